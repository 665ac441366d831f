"""A storm on the publish path (429s on the release repo's API route, 503s opening the PR, 429s on the
preupload, 503s on the commit) that lasts more tries than the bot used to give before it failed the job for
good ends in exactly one release, with no one typing `/retry`: the publish step waits out each failure (the
job stays built, the build kept) and tries again until it goes through. The clock is short (backoff in tens
of milliseconds, the deadline in seconds); hubsim is the Hub, over HTTP, with its fault injection. The
client's own retries absorb the create-PR, preupload and commit faults within one try (seconds of its
backoff); the bot's budget on a read is four requests, so the 429s on the repo's route fail a try per four.
The timeline is printed (`pytest -s`). A verification whose download the Hub fails gives no verdict: the
publish waits and verifies again.
"""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from bot.errors import HubUnavailable
from bot.publishing.publish_step import PublishStep
from bot.publishing.verification import run_verification
from bot.retries import Cause, Retries, cause_of
from bot.settings import load_settings
from builders.spec import VerifyRequest
from state import JobStatus, ReleaseStatus, Store
from state.models import JobEvent

pytestmark = pytest.mark.slow

READS, CREATE_PR, PREUPLOAD, COMMIT = 32, 3, 4, 2
OLD_GIVE_UP = 6  # the previous policy: the publish and `publish_retries` (5) more, then failed for good


def _timeline(events: list[JobEvent]) -> str:
    first: datetime = events[0].at
    return "\n".join(
        f"  +{(e.at - first).total_seconds():7.2f} s  {e.from_status.value if e.from_status else '':>10} → "
        f"{e.to_status.value:<10} {e.note or ''}"
        for e in events
    )


def test_a_storm_longer_than_the_old_give_up_ends_in_exactly_one_release(
    hubsim, builds, upstream, publisher, release_repo, store: Store
) -> None:
    build = builds.get(upstream.repo_id, upstream.revisions[0], "gptq")
    repo_id = release_repo("storm")
    settings = load_settings(
        None, transient_deadline_h=120 / 3600, publish_backoff_s=0.05, transient_backoff_max_s=0.4
    )
    step = PublishStep(
        store,
        publisher,
        owner="publisher",
        lease_s=60,
        retries=Retries(settings, store),
        release=lambda job, approval: publisher.publish(build, repo_id=repo_id, approval=approval),
    )
    job, _ = store.jobs.enqueue("s" * 64, {"output_dir": str(build)}, repo=upstream.repo_id)
    store.lifecycle.claim_build("w", 60)
    store.lifecycle.finish_build(job.id, "w", {"status": "succeeded"})
    faults = [
        hubsim.fail(rf"/api/models/{repo_id}$", 429, method="GET", times=READS, retry_after=0),
        hubsim.fail(r"/discussions$", 503, method="POST", times=CREATE_PR),  # opening the draft PR
        hubsim.fail(r"/preupload/", 429, method="POST", times=PREUPLOAD, retry_after=0),
        hubsim.fail(r"/commit/", 503, method="POST", times=COMMIT),
    ]
    started = time.monotonic()
    while not (current := store.jobs.get(job.id)).terminal:  # the publish loop, as the executor runs it
        assert time.monotonic() - started < 600, "the storm was not waited out"
        claimed = store.lifecycle.claim_publish("publisher", 60)
        if claimed is None:
            time.sleep(0.02)  # waiting for its retry time
            continue
        step.publish(claimed)
    events = store.jobs.history(job.id)
    print(f"\nstorm: {READS} repo-read 429s, {CREATE_PR} create-PR 503s, ", end="")
    print(f"{PREUPLOAD} preupload 429s, {COMMIT} commit 503s")
    print(_timeline(events))

    assert current.status is JobStatus.PUBLISHED, current.error
    assert all(f.times == 0 for f in faults)  # the storm was met in full
    tries = sum(1 for e in events if e.to_status is JobStatus.PUBLISHING)
    assert tries > OLD_GIVE_UP  # more tries than the old policy gave before failing the job
    waits = [e.note or "" for e in events if (e.note or "").startswith("transient: retrying at ")]
    assert len(waits) == tries - 1 and waits[-1].endswith(f"attempt {tries}")
    assert not any((e.note or "").startswith("/retry") for e in events)  # no human action
    assert current.attempts == 1  # built once
    releases = store.releases.find(build_key=job.build_key)
    assert [(r.repo_id, r.status) for r in releases] == [(repo_id, ReleaseStatus.PUBLISHED)]
    prs = [d for d in hubsim.api.get_repo_discussions(repo_id) if d.is_pull_request]
    assert [pr.status for pr in prs] == ["merged"]  # one PR, merged: no duplicate left behind


def test_a_verification_download_the_hub_fails_is_retried_not_a_failed_check(
    hubsim, settings, repo_factory
) -> None:
    repo_id = repo_factory("verify-storm")
    commit = hubsim.api.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id=repo_id)
    hubsim.fail(rf"{repo_id}/(tree|resolve|revision)/", 503, method="GET", times=1000)
    request = VerifyRequest(repo_id=repo_id, revision=commit.oid, endpoint=hubsim.url)
    with pytest.raises(HubUnavailable, match="the Hub failed the download") as failed:
        run_verification(settings, request)
    assert cause_of(failed.value) is Cause.HUB  # the publish waits and verifies again, no verdict recorded
    hubsim.server.faults.clear()
    gone = VerifyRequest(repo_id=repo_id, revision="0" * 40, endpoint=hubsim.url)
    assert not run_verification(settings, gone).ok  # a revision that is not there is a verdict: failed
