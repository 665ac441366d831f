"""Upstream changes: a new sha on main of a watched model becomes one job per eligible format, once; the bot's
own repos and commits, other refs and unwatched repos never do. A real store, a real Hub client on hubsim."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from bot.eligibility.specs import SpecMaker
from bot.hub import Hub
from bot.intake.webhooks import event_from_payload
from bot.settings import load_settings
from builders.spec import BuildSpec
from handlers import upstream
from handlers.context import Context, Options
from handlers.inputs import Eligibility
from handlers.router import HANDLED, IGNORED
from state import BuildChange, JobStatus, ReleaseKind, Store, WatchKind


class Planner:
    """The PlannerPort with a fixed answer (plain data, as the port hands it); specs by the real SpecMaker."""

    def __init__(
        self,
        settings: Any,
        eligible: dict[str, list[int]],
        refused: str | None = None,
        fp8_kv_cache: dict[str, list[int]] | None = None,
    ) -> None:
        self.maker = SpecMaker(settings, hub=None)  # type: ignore[arg-type]
        self.eligible, self.refused, self.fp8_kv_cache = eligible, refused, fp8_kv_cache or {}
        self.asked: list[tuple[str, str]] = []

    def eligibility(self, repo_id: str, revision: str) -> Eligibility:
        self.asked.append((repo_id, revision))
        sms = tuple(sorted({sm for s in self.eligible.values() for sm in s}))
        return Eligibility(
            repo_id, revision, "strict", self.refused, sms, dict(self.eligible), model_type="llama",
            fp8_kv_cache=dict(self.fp8_kv_cache),
        )  # fmt: skip

    def specs(self, eligibility: Eligibility, **narrow: Any) -> list[Any]:
        return self.maker.specs(eligibility, **narrow)


@pytest.fixture
def upstream_repo(hubsim, repo_factory: Callable[..., str]) -> tuple[str, str]:
    repo = repo_factory("upstream")
    sha = hubsim.api.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id=repo).oid
    return repo, sha


def _push(payloads: dict[str, Any], repo: str, sha: str, ref: str = "refs/heads/main") -> dict[str, Any]:
    payload = payloads["main_commit"]
    payload["repo"]["name"], payload["repo"]["headSha"] = repo, sha
    payload["updatedRefs"] = [{"ref": ref, "oldSha": None, "newSha": sha}]
    return payload


def _run(hubsim, store: Store, payload: dict[str, Any], planner: Planner, **options: Any) -> str:
    parsed = event_from_payload(payload, "delivery")
    recorded = store.events.record(
        delivery_id=parsed.delivery_id, scope=parsed.scope, action=parsed.action, payload=payload,
        dedup_key=parsed.dedup_key, repo=parsed.repo,
    )  # fmt: skip
    ctx = Context(
        event=store.events.get(recorded.event_id),
        hook=parsed.hook,
        hub=Hub(endpoint=hubsim.url, token=hubsim.token),
        store=store,
        options=Options(**({"bot_name": "quantbot", "namespace": "quantbot"} | options)),
        planner=planner,
        log=logging.LoggerAdapter(logging.getLogger("test"), {}),
    )
    return upstream.on_push(ctx)


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
    assert _run(hubsim, store, _push(payloads, repo, sha), planner) == HANDLED
    assert planner.asked == [(repo, sha)]
    jobs = store.jobs.list(repo=repo)
    assert sorted((j.spec["format"], tuple(j.spec["target_sms"]), j.spec["revision"]) for j in jobs) == [
        ("fp8", (90,), sha),
        ("gptq", (90,), sha),
    ]  # fmt: skip  (the watch's formats and SMs; nvfp4 is not asked for)
    assert {(c.job_id, c.status) for c in heard} == {(j.id, JobStatus.QUEUED) for j in jobs}  # executor hears
    assert _run(hubsim, store, _push(payloads, repo, sha), planner) == HANDLED  # the same revision again
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
        assert _run(hubsim, store, _push(payloads, repo, sha), planner) == HANDLED

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
    assert _run(hubsim, store, _push(payloads, repo, sha), planner) == HANDLED
    assert store.jobs.list(repo=repo) == []


def test_what_is_not_a_new_revision_for_the_bot_is_ignored(
    hubsim, store: Store, upstream_repo, payloads, tmp_path
) -> None:
    repo, sha = upstream_repo
    planner = Planner(load_settings(None, data_dir=tmp_path), {"gptq": [90]})
    assert _run(hubsim, store, _push(payloads, repo, sha), planner) == IGNORED  # not watched
    store.watches.add(WatchKind.AUTHOR, repo.split("/")[0])
    assert _run(hubsim, store, _push(payloads, repo, sha, ref="refs/pr/1"), planner) == IGNORED
    assert _run(hubsim, store, _push(payloads, repo, sha, ref="refs/heads/dev"), planner) == IGNORED
    own = _push(payloads, repo, sha)
    assert _run(hubsim, store, own, planner, bot_user=hubsim.user) == IGNORED  # the bot's own commit
    assert _run(hubsim, store, own, planner, namespace=repo.split("/")[0]) == IGNORED  # its namespace
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

    assert _run(hubsim, store, _push(payloads, repo, sha), planner) == HANDLED
    [job] = store.jobs.list(repo=repo.upper())
    respelled = BuildSpec.model_validate(job.spec | {"repo_id": repo.upper()})
    assert respelled.key() == job.build_key  # one build key, whatever the case
    assert len(store.watches.list()) == 1 and store.watches.find(kind, target.upper()) is not None
    store.releases.record(build_key=job.build_key, repo_id=repo.upper(), kind=ReleaseKind.REPO, url="u")
    assert store.releases.find(repo_id=repo) != []  # the bot's own repo, whatever case it was recorded in
