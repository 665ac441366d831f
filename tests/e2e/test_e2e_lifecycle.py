"""A watched upstream through its life: webhooks, a bot crash mid-build, commands, maintainers' decisions.

One bot (a real `quantbot serve` process), one upstream repo of alice's watched for GPTQ builds released by
pull request; the tests run in order and each leaves the world as the next one expects it.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import BotProcess, E2EHub, publish_upstream, push_revision, wait_for

from state import JobStatus, ReleaseStatus, Store

pytestmark = pytest.mark.slow

BUILD_S = 240


@pytest.fixture(scope="module")
def upstream(e2e_hub: E2EHub, tiny_model: Path, bot: BotProcess) -> str:
    repo, _ = publish_upstream(e2e_hub, tiny_model, "up")
    bot.cli("watch", "add", "repo", repo, "--formats", "gptq", "--approval", "approval")
    synced = bot.cli("webhooks", "sync", "--url", bot.url + "/webhooks/hub").stdout
    assert f"watching model {repo}" in synced and "watching org qb-releases" in synced
    return repo


@pytest.fixture(scope="module")
def store(bot: BotProcess) -> Iterator[Store]:
    opened = bot.store()
    yield opened
    opened.close()


def _delivery(hub: E2EHub, repo: str, sha: str) -> dict:
    def found() -> dict | None:
        for d in hub.server.hub.webhooks.deliveries():
            refs = d.payload.get("updatedRefs") or []
            if d.payload["repo"]["name"] == repo and any(r["newSha"] == sha for r in refs):
                return d.payload if d.status is not None else None
        return None

    return wait_for(found, 30, f"the hub's webhook for {repo}@{sha[:7]}")


def _job(store: Store, repo: str, sha: str):
    jobs = [j for j in store.jobs.list(repo=repo) if j.spec["revision"] == sha]
    assert len(jobs) <= 1, jobs
    return jobs[0] if jobs else None


def _finished(store: Store, job_id: int):
    job = store.jobs.get(job_id)
    return job if job.terminal else None


def _event_for(store: Store, repo: str, sha: str):
    found = [e for e in store.events.recent(200) if e.repo == repo and sha in e.dedup_key]
    return found[0] if found and found[0].processed_at else None


def _bot_prs(hub: E2EHub, repo: str) -> list:
    return list(hub.api("maya").get_repo_discussions(repo, author="quantbot", discussion_type="pull_request"))


def _reply(hub: E2EHub, repo: str, num: int, after: int = 0):
    def found():
        details = hub.api("alice").get_discussion_details(repo, num)
        replies = [e for e in details.events if e.type == "comment" and e.author == "quantbot"]
        return replies[after] if len(replies) > after else None

    return wait_for(found, 60, f"the bot's reply in {repo}#{num}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def test_the_same_delivery_five_times_is_one_build(
    bot: BotProcess, e2e_hub: E2EHub, upstream: str, store: Store
) -> None:
    sha = push_revision(e2e_hub, upstream, "revision 2")
    body = json.dumps(_delivery(e2e_hub, upstream, sha)).encode()
    answers = [bot.post(body) for _ in range(5)]
    assert [a.status_code for a in answers] == [202] * 5
    job = wait_for(lambda: _job(store, upstream, sha), 30, "the build job")
    assert job.spec["format"] == "gptq" and job.spec["target_sms"]
    assert len(store.jobs.list(repo=upstream)) == 1


def test_killed_during_calibration_the_bot_re_attaches_to_its_builder_and_opens_exactly_one_pr(
    bot: BotProcess, e2e_hub: E2EHub, upstream: str, store: Store
) -> None:
    [job] = store.jobs.list(repo=upstream)
    record = Path(job.spec["work_dir"]) / "stages" / "quantize.json"
    calibrating = lambda: record.exists() and '"running"' in record.read_text()  # noqa: E731
    wait_for(calibrating, BUILD_S, "the calibration to start")
    pid = int((Path(job.spec["work_dir"]) / "worker.pid").read_text().split()[0])
    assert bot.stop(signal.SIGKILL) == -signal.SIGKILL
    assert _alive(pid), "the builder died with the bot"
    assert store.jobs.get(job.id).status is JobStatus.RUNNING  # leased to a dead bot
    # The tiny model calibrates in seconds, a real one for many minutes: hold the builder where it is (in
    # calibration) until the new bot is up, as a long calibration would be.
    os.killpg(pid, signal.SIGSTOP)
    try:
        bot.start()
        wait_for(lambda: store.jobs.get(job.id).lease_owner.split(":")[1] == str(bot.process.pid), 60,
                 "the restarted bot to take the job over")  # fmt: skip
    finally:
        os.killpg(pid, signal.SIGCONT)
    done = wait_for(lambda: _finished(store, job.id), BUILD_S, "the adopted build to be published")
    assert done.status is JobStatus.PUBLISHED, done.error
    assert done.attempts == 1  # never restarted: the same builder went on calibrating
    notes = [e.note for e in store.jobs.history(job.id)]
    assert f"re-attached to builder pid {pid}" in notes
    quantize = next(s for s in done.manifest["stages"] if s["name"] == "quantize")
    assert quantize["runs"] == 1 and not quantize["resumed"]
    assert not _alive(pid)
    [release] = store.releases.find(build_key=done.build_key)
    assert release.status is ReleaseStatus.OPEN and release.pr_number is not None
    prs = _bot_prs(e2e_hub, release.repo_id)
    assert [(pr.num, pr.status) for pr in prs] == [(release.pr_number, "open")]


def test_a_non_maintainer_is_refused_politely(
    bot: BotProcess, e2e_hub: E2EHub, upstream: str, store: Store
) -> None:
    mallory = e2e_hub.api("mallory")
    discussion = mallory.create_discussion(upstream, "GPTQ please", description="Could you build it?")
    mallory.comment_discussion(upstream, discussion.num, "/quantize gptq")
    reply = _reply(e2e_hub, upstream, discussion.num)
    assert reply.content.startswith("Sorry @mallory")
    assert "`alice`" in reply.content and "`maya`" in reply.content
    assert len(store.jobs.list(repo=upstream)) == 1


def test_a_command_in_a_pull_request_works_as_in_a_discussion(e2e_hub: E2EHub, upstream: str) -> None:
    alice = e2e_hub.api("alice")
    pr = alice.create_pull_request(upstream, "Tweak the card", description="A small change.")
    alice.comment_discussion(upstream, pr.num, "@quantbot status")
    reply = _reply(e2e_hub, upstream, pr.num)
    assert f"The latest builds of `{upstream}`" in reply.content and "**gptq**" in reply.content


def test_a_maintainer_merges_and_the_release_is_published(
    e2e_hub: E2EHub, upstream: str, store: Store
) -> None:
    [job] = store.jobs.list(repo=upstream)
    [release] = store.releases.find(build_key=job.build_key)
    e2e_hub.api("maya").merge_pull_request(release.repo_id, release.pr_number)
    wait_for(
        lambda: store.releases.get(release.id).status is ReleaseStatus.PUBLISHED,
        30,
        "the release to be marked published",
    )
    on_main = json.loads(
        Path(e2e_hub.api("maya").hf_hub_download(release.repo_id, "manifest.json")).read_text()
    )
    assert on_main["key"] == job.build_key
    # a local build's SMs had no task of their own: this machine ran their serving checks after the
    # upload, on the release's commit; it has no GPU, so only transformers (GPTQ runs on CPU) has figures
    served = on_main["serving"]
    assert {r["sm"] for r in served} == set(job.spec["target_sms"])
    [cpu] = [r for r in served if r["status"] == "passed"]
    assert (cpu["runtime"], cpu["device"], cpu["repo_id"]) == ("transformers", "cpu", release.repo_id)
    assert cpu["tokens_per_s"] > 0 and cpu["load_s"] > 0
    assert all(
        r["status"] == "not_run" and r["reason"] and r["tokens_per_s"] is None for r in served if r != cpu
    )
    # the merge moved main of the bot's own release repo: that event is ignored, no build loop starts
    merged_sha = e2e_hub.api("maya").model_info(release.repo_id).sha
    event = wait_for(lambda: _event_for(store, release.repo_id, merged_sha), 30, "the merge's webhook")
    assert event.outcome == "ignored"
    assert store.jobs.list(repo=release.repo_id) == []


def test_a_closed_pr_is_never_reopened(bot: BotProcess, e2e_hub: E2EHub, upstream: str, store: Store) -> None:
    sha3 = push_revision(e2e_hub, upstream, "revision 3")
    job3 = wait_for(lambda: _job(store, upstream, sha3), 30, "revision 3's job")
    job3 = wait_for(lambda: _finished(store, job3.id), BUILD_S, "revision 3's release")
    assert job3.status is JobStatus.PUBLISHED, job3.error
    [pr3] = store.releases.find(build_key=job3.build_key)
    e2e_hub.api("maya").change_discussion_status(
        pr3.repo_id, pr3.pr_number, "closed", comment="Not this one."
    )
    wait_for(
        lambda: store.releases.get(pr3.id).status is ReleaseStatus.DECLINED,
        30,
        "the release to be marked declined",
    )

    body = json.dumps(_delivery(e2e_hub, upstream, sha3)).encode()
    assert bot.post(body).status_code == 202  # a late copy of a handled push: nothing new
    sha4 = push_revision(e2e_hub, upstream, "revision 4")
    job4 = wait_for(lambda: _job(store, upstream, sha4), 30, "revision 4's job")
    job4 = wait_for(lambda: _finished(store, job4.id), BUILD_S, "revision 4's release")
    assert job4.status is JobStatus.PUBLISHED, job4.error
    statuses = {pr.num: pr.status for pr in _bot_prs(e2e_hub, pr3.repo_id)}
    assert statuses[pr3.pr_number] == "closed"
    assert sorted(statuses.values()) == ["closed", "merged", "open"]
    assert store.releases.get(pr3.id).status is ReleaseStatus.DECLINED


def test_cancel_stops_the_build_process(e2e_hub: E2EHub, tiny_model: Path, store: Store) -> None:
    repo, _ = publish_upstream(e2e_hub, tiny_model, "cancel-me")
    maya = e2e_hub.api("maya")
    discussion = maya.create_discussion(repo, "Builds", description="/quantize gptq")
    job = wait_for(lambda: next(iter(store.jobs.list(repo=repo)), None), 60, "the command's job")
    pid_file = Path(job.spec["work_dir"]) / "worker.pid"
    wait_for(
        lambda: store.jobs.get(job.id).status is JobStatus.RUNNING and pid_file.exists(),
        60,
        "the build to run",
    )
    pid = int(pid_file.read_text().split()[0])
    assert _alive(pid)
    maya.comment_discussion(repo, discussion.num, "/cancel")
    wait_for(lambda: store.jobs.get(job.id).status is JobStatus.CANCELLED, 30, "the job to be cancelled")
    wait_for(lambda: not _alive(pid), 20, "the builder process to stop")
    answer = _reply(e2e_hub, repo, discussion.num, after=1)
    assert "cancelled 1 build(s)" in answer.content
    first = _reply(e2e_hub, repo, discussion.num)
    wait_for(
        lambda: "cancelled" in _reply(e2e_hub, repo, discussion.num).content, 20, "the first reply to say so"
    )
    assert first.id != answer.id
