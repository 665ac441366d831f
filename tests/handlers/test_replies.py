"""A reply's text is a function of the store: a line per build saying where it is; closed when done."""

from __future__ import annotations

from datetime import UTC, datetime

from handlers.replies import close, following, reply_state
from state import CommandStatus, JobStatus, ReleaseKind, ReleaseStatus, Store
from state.lifecycle import Wait

SHA = "ab" * 20


def _job(store: Store, key: str, fmt: str = "gptq") -> int:
    spec = {"format": fmt, "target_sms": [89, 90], "revision": SHA}
    return store.jobs.enqueue(key, spec, repo="alice/m")[0].id


def _command(store: Store, keys: list[str]) -> int:
    command, _ = store.commands.record(
        repo="alice/m", discussion_num=1, comment_id="c1", author="alice", text="/quantize", parsed={}
    )
    store.commands.update(command.id, parsed={"intro": "@alice asked for **gptq**."}, build_keys=keys)
    return store.commands.update(command.id, status=CommandStatus.REPLIED, reply_comment_id="r1").id


def test_each_build_says_where_it_is(store: Store) -> None:
    queued, running, failed = (_job(store, k * 64) for k in "qrf")
    command = store.commands.get(_command(store, ["q" * 64, "r" * 64, "f" * 64]))
    store.lifecycle.claim_build("w", 60)  # the oldest: `queued` is now running
    store.jobs.heartbeat(queued, "w", 60, progress=0.25, message="quantize: layer 3 of 12")
    store.lifecycle.claim_build("w", 60)
    store.lifecycle.fail_build(running, "w", "quantize: CUDA out of memory\n  at line 3", None)
    text, done = reply_state(store, command)
    lines = text.splitlines()
    assert lines[0] == "@alice asked for **gptq**."
    assert lines[2] == (
        f"- **gptq** (sm89, sm90) of `alice/m` at `{SHA[:12]}`: building, 25%: quantize: layer 3 of 12"
    )
    assert lines[3].endswith(": failed: quantize: CUDA out of memory at line 3")  # one line, always
    assert lines[4].endswith(": queued") and failed
    assert lines[-1] == "I edit this comment as the builds progress." and not done


def test_a_published_build_links_its_release_and_the_reply_is_done(store: Store) -> None:
    job = _job(store, "p" * 64)
    command = store.commands.get(_command(store, ["p" * 64]))
    store.lifecycle.claim_build("w", 60)
    store.lifecycle.finish_build(job, "w", {"status": "succeeded"})
    store.lifecycle.claim_publish("w", 60)
    url = "http://hub/alice/m/discussions/7"
    store.releases.record(
        build_key="p" * 64, repo_id="alice/m", kind=ReleaseKind.PR, url=url, pr_number=7, job_id=job
    )
    store.lifecycle.finish_publish(job, "w", "opened PR #7")
    text, done = reply_state(store, command)
    assert f": ready for review (published when a maintainer merges it): {url}" in text
    assert text.endswith("`/retry` to retry failed ones.") and done
    store.releases.set_status(
        store.releases.find(pr_number=7)[0].id, {ReleaseStatus.OPEN}, ReleaseStatus.CLOSED
    )
    assert ": closed by a maintainer: " in reply_state(store, command)[0]


def test_a_reply_follows_its_builds_until_closed(store: Store) -> None:
    _job(store, "k" * 64)
    command_id = _command(store, ["k" * 64])
    assert [c.id for c in following(store, "k" * 64)] == [command_id]
    assert following(store, "z" * 64) == []
    close(store, command_id)
    close(store, command_id)  # a second close (another thread) is no error
    assert store.commands.get(command_id).status is CommandStatus.DONE
    assert following(store, "k" * 64) == []
    assert store.jobs.get(1).status is JobStatus.QUEUED  # closing a reply moves no job


def test_a_build_the_hub_failed_says_when_it_tries_again(store: Store) -> None:
    job = _job(store, "h" * 64)
    command = store.commands.get(_command(store, ["h" * 64]))
    store.lifecycle.claim_build("w", 60)
    at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    store.lifecycle.defer_build(job, "w", "fetch: could not download: 503", Wait(at, at, 3))
    text, done = reply_state(store, command)
    assert text.splitlines()[2].endswith(
        ": waiting: fetch: could not download: 503; retrying at 2030-01-02 03:04:05 UTC, attempt 3"
    )
    assert not done  # waiting is not an end
