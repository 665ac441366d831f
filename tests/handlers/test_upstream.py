"""Upstream changes: a new sha on main of a watched model becomes one job per eligible format, once; the bot's
own repos and commits, other refs and unwatched repos never do. A real store, a real Hub client on hubsim."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from handler_support import Planner, answer, context, push_payload, run_push
from huggingface_hub import CommitOperationAdd, hf_hub_download

from bot.hub import Hub
from bot.publishing.metadata_update import MetadataUpdates
from bot.settings import load_settings
from builders.spec import BuildSpec
from handlers import upstream as upstream_handler
from handlers.replies import job_line
from handlers.router import HANDLED, IGNORED
from state import BuildChange, JobStatus, ReleaseKind, ReleaseStatus, Store, WatchKind


@pytest.fixture
def upstream_repo(hubsim, repo_factory: Callable[..., str]) -> tuple[str, str]:
    repo = repo_factory("upstream")
    sha = hubsim.api.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id=repo).oid
    return repo, sha


def test_a_new_sha_of_a_watched_model_queues_one_job_per_format_once(
    hubsim, store: Store, upstream_repo, payloads, tmp_path
) -> None:
    repo, sha = upstream_repo
    store.watches.add(WatchKind.REPO, repo, formats=["gptq", "fp8"], sms=[90])
    planner = Planner(
        load_settings(None, data_dir=tmp_path), {"fp8": [89, 90], "gptq": [86, 90], "nvfp4": [100]}
    )
    heard: list[BuildChange] = []
    store.changes.listen(heard.append)
    assert run_push(hubsim, store, push_payload(payloads, repo, sha), planner) == HANDLED
    assert planner.asked == [(repo, sha)]
    jobs = store.jobs.list(repo=repo)
    assert sorted((j.spec["format"], tuple(j.spec["target_sms"]), j.spec["revision"]) for j in jobs) == [
        ("fp8", (90,), sha),
        ("gptq", (90,), sha),
    ]  # fmt: skip  (the watch's formats and SMs; nvfp4 is not asked for)
    assert {(c.job_id, c.status) for c in heard} == {(j.id, JobStatus.QUEUED) for j in jobs}  # executor hears
    again = push_payload(payloads, repo, sha)  # the same revision again
    assert run_push(hubsim, store, again, planner) == HANDLED
    assert len(store.jobs.list(repo=repo)) == 2


def test_a_watch_with_kv_cache_none_turns_the_default_fp8_kv_cache_off(
    hubsim, store: Store, repo_factory: Callable[..., str], payloads, tmp_path
) -> None:
    plain, off = repo_factory("kv-default"), repo_factory("kv-off")
    shas = {
        repo: hubsim.api.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id=repo).oid
        for repo in (plain, off)
    }
    store.watches.add(WatchKind.REPO, plain)
    store.watches.add(WatchKind.REPO, off, kv_cache="none")
    planner = Planner(
        load_settings(None, data_dir=tmp_path), {"fp8": [90], "gptq": [90]}, fp8_kv_cache={"fp8": [90]}
    )
    for repo, sha in shas.items():
        assert run_push(hubsim, store, push_payload(payloads, repo, sha), planner) == HANDLED

    def recipes(repo: str) -> dict[str, dict[str, Any]]:
        return {j.spec["format"]: j.spec["recipe"] for j in store.jobs.list(repo=repo)}

    assert recipes(plain)["fp8"]["kv_cache"] == "fp8"  # the matrices mark it: the default is on
    assert recipes(off)["fp8"]["kv_cache"] == "none"
    assert recipes(off)["fp8"]["kv_cache_reason"] == f"not quantized: turned off by the watch on {off}"


def test_a_refused_model_is_handled_with_nothing_queued(
    hubsim, store: Store, upstream_repo, payloads, tmp_path
):
    repo, sha = upstream_repo
    store.watches.add(WatchKind.REPO, repo)
    planner = Planner(load_settings(None, data_dir=tmp_path), {}, refused="already quantized")
    assert run_push(hubsim, store, push_payload(payloads, repo, sha), planner) == HANDLED
    assert store.jobs.list(repo=repo) == []


def test_what_is_not_a_new_revision_for_the_bot_is_ignored(
    hubsim, store: Store, upstream_repo, payloads, tmp_path
) -> None:
    repo, sha = upstream_repo
    planner = Planner(load_settings(None, data_dir=tmp_path), {"gptq": [90]})
    assert run_push(hubsim, store, push_payload(payloads, repo, sha), planner) == IGNORED  # not watched
    store.watches.add(WatchKind.AUTHOR, repo.split("/")[0])
    assert run_push(hubsim, store, push_payload(payloads, repo, sha, ref="refs/pr/1"), planner) == IGNORED
    assert (
        run_push(hubsim, store, push_payload(payloads, repo, sha, ref="refs/heads/dev"), planner) == IGNORED
    )
    own = push_payload(payloads, repo, sha)
    assert run_push(hubsim, store, own, planner, bot_user=hubsim.user) == IGNORED  # the bot's own commit
    assert run_push(hubsim, store, own, planner, namespace=repo.split("/")[0]) == IGNORED  # its namespace
    assert planner.asked == [] and store.jobs.list(repo=repo) == []


@pytest.mark.parametrize("kind", [WatchKind.REPO, WatchKind.AUTHOR, WatchKind.BASE_MODEL])
def test_a_watch_written_in_another_case_fires(
    hubsim, store: Store, repo_factory, payloads, tmp_path, kind: WatchKind
) -> None:
    """The Hub resolves ids in any case (hubsim's canonical name comes back in the webhook); so does a watch.
    The jobs, keys and release lookups then find each other whichever case a name was written in."""
    base = repo_factory("base")
    repo = repo_factory("fine-tune")
    card = f"---\nbase_model: {base.upper()}\n---\n"
    sha = hubsim.api.upload_file(path_or_fileobj=card.encode(), path_in_repo="README.md", repo_id=repo).oid
    target = {WatchKind.REPO: repo, WatchKind.AUTHOR: repo.split("/")[0], WatchKind.BASE_MODEL: base}[kind]
    store.watches.add(kind, target.swapcase())
    planner = Planner(load_settings(None, data_dir=tmp_path), {"gptq": [90]})

    assert run_push(hubsim, store, push_payload(payloads, repo, sha), planner) == HANDLED
    [job] = store.jobs.list(repo=repo.upper())
    respelled = BuildSpec.model_validate(job.spec | {"repo_id": repo.upper()})
    assert respelled.key() == job.build_key  # one build key, whatever the case
    assert len(store.watches.list()) == 1 and store.watches.find(kind, target.upper()) is not None
    store.releases.record(build_key=job.build_key, repo_id=repo.upper(), kind=ReleaseKind.REPO, url="u")
    assert store.releases.find(repo_id=repo) != []  # the bot's own repo, whatever case it was recorded in


# ------------------------------------------------------------------------------------------------ cooldown


def test_a_burst_of_pushes_within_the_cooldown_gives_one_build_of_the_last(
    hubsim, store: Store, upstream_repo, payloads, tmp_path
) -> None:
    repo, first = upstream_repo
    store.watches.add(WatchKind.REPO, repo, formats=["gptq"], cooldown_minutes=30)
    planner = Planner(load_settings(None, data_dir=tmp_path), {"gptq": [90]})
    assert run_push(hubsim, store, push_payload(payloads, repo, first), planner) == HANDLED
    [waiting] = store.jobs.list(repo=repo)
    pushed = hubsim.api.list_repo_commits(repo)[0].created_at
    assert waiting.not_before is not None and waiting.not_before - pushed == timedelta(minutes=30)
    assert "waiting until" in job_line(waiting, [])
    assert store.lifecycle.claim_build("worker", 60) is None  # nothing is built while it waits

    last = hubsim.api.upload_file(path_or_fileobj=b"{ }", path_in_repo="config.json", repo_id=repo).oid
    assert run_push(hubsim, store, push_payload(payloads, repo, last), planner) == HANDLED

    statuses = {j.spec["revision"]: j.status for j in store.jobs.list(repo=repo)}
    assert statuses == {first: JobStatus.CANCELLED, last: JobStatus.QUEUED}
    assert store.lifecycle.claim_build("worker", 60) is None


def test_quantize_waits_for_the_cooldown_unless_now(
    hubsim, store: Store, upstream_repo, payloads, tmp_path
) -> None:
    """`/quantize` on a revision pushed lately waits for its cooldown; `/quantize --now` by someone allowed to
    build starts what waits at once, and `/status` says until when a build waits."""
    repo, sha = upstream_repo
    planner = Planner(load_settings(None, data_dir=tmp_path), {"gptq": [90]})
    allowed = frozenset({hubsim.other_user})
    ctx = context(
        hubsim, store, push_payload(payloads, repo, sha), planner, cooldown_minutes=60, maintainers=allowed
    )
    num = hubsim.other_api.create_discussion(repo, "Builds").num

    def command(text: str) -> str:
        return answer(hubsim, ctx, num, text)

    command("/quantize gptq")
    assert store.lifecycle.claim_build("worker", 60) is None
    assert "waiting until" in command("/status")
    command("/quantize --now")
    claimed = store.lifecycle.claim_build("worker", 60)
    assert claimed is not None and claimed.spec["revision"] == sha


# ------------------------------------------------------------------------------------ metadata-only pushes


def _commit(api, repo: str, files: dict[str, bytes]) -> str:
    operations = [CommitOperationAdd(path, content) for path, content in files.items()]
    return api.create_commit(repo, operations, commit_message="update").oid


def _published(store: Store, upstream: str, revision: str, release: str, hub_url: str) -> None:
    """A build of `upstream` at `revision` released on `release`'s main, as the publish step records it."""
    job, _ = store.jobs.enqueue(f"key-{revision}", {"format": "gptq", "revision": revision}, repo=upstream)
    store.lifecycle.claim_build("worker", 60)
    store.lifecycle.finish_build(job.id, "worker", {"status": "succeeded"})
    store.lifecycle.claim_publish("worker", 60)
    store.lifecycle.finish_publish(job.id, "worker", "published on main")
    store.releases.record(
        build_key=job.build_key,
        repo_id=release,
        kind=ReleaseKind.REPO,
        url=f"{hub_url}/{release}",
        job_id=job.id,
        status=ReleaseStatus.PUBLISHED,
    )


def test_a_push_that_changes_no_weights_carries_its_metadata_to_the_release_without_a_build(
    hubsim, store: Store, repo_factory: Callable[..., str], payloads, tmp_path
) -> None:
    upstream = repo_factory("upstream", token=hubsim.other_token)
    first = _commit(
        hubsim.other_api,
        upstream,
        {
            "config.json": b'{"model_type": "llama"}',
            "model.safetensors": b"weights",
            "tokenizer_config.json": b'{"chat_template": "v1"}',
            "README.md": b"# Upstream\n",
        },
    )
    release = repo_factory("release")
    _commit(
        hubsim.api,
        release,
        {
            "config.json": b'{"model_type": "llama", "quantization_config": {}}',
            "model.safetensors": b"q",
            "tokenizer_config.json": b'{"chat_template": "v1"}',
            "trt-llm/checkpoints/tokenizer_config.json": b'{"chat_template": "v1"}',
        },
    )
    store.watches.add(WatchKind.REPO, upstream, formats=["gptq"])
    _published(store, upstream, first, release, hubsim.url)
    planner = Planner(load_settings(None, data_dir=tmp_path), {"gptq": [90]})
    upkeep = MetadataUpdates(Hub(endpoint=hubsim.url, token=hubsim.token), store, hubsim.user, hubsim.url)

    def push(files: dict[str, bytes]) -> str:
        sha = _commit(hubsim.other_api, upstream, files)
        ctx = context(hubsim, store, push_payload(payloads, upstream, sha), planner, upkeep)
        assert upstream_handler.on_push(ctx) == HANDLED
        return sha

    fixed = push({"tokenizer_config.json": b'{"chat_template": "v2"}', "README.md": b"# Fixed template\n"})
    assert planner.asked == [] and len(store.jobs.list(repo=upstream)) == 1  # no build
    [pr] = hubsim.api.get_repo_discussions(release, discussion_type="pull_request")
    details = hubsim.api.get_discussion_details(release, pr.num)
    assert details.author == hubsim.user and "nothing was rebuilt" in details.events[0].content
    ref = f"refs/pr/{pr.num}"
    assert set(hubsim.api.list_repo_files(release, revision=ref)) == set(hubsim.api.list_repo_files(release))
    for path in ("tokenizer_config.json", "trt-llm/checkpoints/tokenizer_config.json"):
        got = hf_hub_download(release, path, revision=ref, endpoint=hubsim.url, token=hubsim.token)
        assert Path(got).read_bytes() == b'{"chat_template": "v2"}'
    again = context(hubsim, store, push_payload(payloads, upstream, fixed), planner, upkeep)
    assert upstream_handler.on_push(again) == HANDLED  # the same push redelivered: no second PR
    assert len(list(hubsim.api.get_repo_discussions(release, discussion_type="pull_request"))) == 1

    rebuilt = push({"model.safetensors": b"new weights"})
    assert planner.asked == [(upstream, rebuilt)]
    assert {j.spec["revision"] for j in store.jobs.list(repo=upstream)} == {first, rebuilt}


def _requests(hubsim, route: str) -> int:
    return hubsim.server.rate_limits.count(caller=hubsim.user, route=route)


def test_a_push_to_a_fine_tune_reads_its_commit_once_and_lists_no_commits(
    hubsim, store: Store, repo_factory: Callable[..., str], payloads, tmp_path
) -> None:
    """A watch on a base model follows thousands of fine-tunes within the Hub's request budget: the card that
    names the base and the files eligibility reads are one request at the pushed commit, and the commits are
    listed (is this the bot's own commit?) only where the bot's token could have pushed one."""
    base, tune = repo_factory("base"), repo_factory("tune")
    card = f"---\nbase_model: {base}\n---\n# A fine-tune\n".encode()
    sha = hubsim.api.upload_file(path_or_fileobj=card, path_in_repo="README.md", repo_id=tune).oid
    store.watches.add(WatchKind.BASE_MODEL, base)
    planner = Planner(load_settings(None, data_dir=tmp_path), {"fp8": [90]})
    info, commits = (
        "GET /api/{rtype}/{ns}/{name}/revision/{rev}",
        "GET /api/{rtype}/{ns}/{name}/commits/{rev}",
    )
    before = _requests(hubsim, info), _requests(hubsim, commits)
    ctx = context(
        hubsim, store, push_payload(payloads, tune, sha), planner, bot_orgs=frozenset({"elsewhere"})
    )
    assert upstream_handler.on_push(ctx) == HANDLED
    assert upstream_handler.find_watch(ctx, tune, sha) is not None  # asked again: answered without a request
    ctx.hub.model_info(tune, revision=sha, files_metadata=True)  # as eligibility reads it
    assert (_requests(hubsim, info) - before[0], _requests(hubsim, commits) - before[1]) == (1, 0)
    assert [j.spec["revision"] for j in store.jobs.list(repo=tune)] == [sha]

    mine = context(
        hubsim, store, push_payload(payloads, tune, sha), planner, bot_orgs=frozenset({hubsim.user})
    )
    assert upstream_handler.on_push(mine) == HANDLED
    assert _requests(hubsim, commits) - before[1] == 1  # asked this time: the token writes there
