"""Jobs: one per build key, moved only along the state machine, claimed by one worker, leases expire."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest

from state import (
    JOB_TRANSITIONS,
    GuardFailed,
    IllegalTransition,
    JobStatus,
    LeaseLost,
    NotFound,
    Store,
)
from state.models import utcnow

SPEC = {"repo": "org/model", "revision": "a" * 40, "format": "gptq"}


def _queued(store: Store, key: str = "key-1") -> int:
    job, created = store.jobs.enqueue(key, SPEC, repo="org/model", label="org/model gptq")
    assert created
    return job.id


def test_enqueue_same_key_twice_yields_one_job(store: Store) -> None:
    first, created = store.jobs.enqueue("k", SPEC, repo="org/model")
    second, again = store.jobs.enqueue("k", {"other": "spec"}, repo="org/model")

    assert (created, again) == (True, False)
    assert second.id == first.id and second.spec == SPEC
    assert len(store.jobs.list()) == 1
    assert [(e.from_status, e.to_status) for e in store.jobs.history(first.id)] == [(None, JobStatus.QUEUED)]


def test_a_finished_key_is_never_queued_again(store: Store) -> None:
    job_id = _queued(store)
    store.jobs.transition(job_id, {JobStatus.QUEUED}, JobStatus.CANCELLED)

    job, created = store.jobs.enqueue("key-1", SPEC, repo="org/model")

    assert not created and job.id == job_id and job.status is JobStatus.CANCELLED


def test_full_life_is_logged_with_times_and_durations(store: Store) -> None:
    job_id = _queued(store)

    claimed = store.jobs.claim("worker-a", lease_s=60)
    assert claimed is not None and claimed.id == job_id
    assert (claimed.status, claimed.attempts, claimed.lease_owner) == (JobStatus.RUNNING, 1, "worker-a")
    assert claimed.lease_expires_at > utcnow() + timedelta(seconds=50)

    store.jobs.heartbeat(job_id, "worker-a", 60, progress=0.5, message="calibrating")
    built = store.jobs.transition(
        job_id, {JobStatus.RUNNING}, JobStatus.BUILT, owner="worker-a", manifest={"ok": True}
    )
    assert (built.status, built.lease_owner, built.manifest, built.progress) == (
        JobStatus.BUILT, None, {"ok": True}, 1.0,
    )  # fmt: skip
    publishing = store.jobs.claim_publish("bot", lease_s=30)
    assert publishing is not None and publishing.id == job_id
    store.jobs.transition(job_id, {JobStatus.PUBLISHING}, JobStatus.PUBLISHED, owner="bot")

    job = store.jobs.get(job_id)  # read back: what was committed, not what a method returned
    assert job.status is JobStatus.PUBLISHED and job.terminal
    assert job.build_seconds is not None and job.build_seconds >= 0
    assert job.publish_seconds is not None and job.finished_at is not None
    assert [(e.from_status, e.to_status, e.worker) for e in store.jobs.history(job_id)] == [
        (None, JobStatus.QUEUED, None),
        (JobStatus.QUEUED, JobStatus.RUNNING, "worker-a"),
        (JobStatus.RUNNING, JobStatus.BUILT, "worker-a"),
        (JobStatus.BUILT, JobStatus.PUBLISHING, "bot"),
        (JobStatus.PUBLISHING, JobStatus.PUBLISHED, "bot"),
    ]


def test_guard_that_does_not_hold_changes_nothing_and_says_why(store: Store) -> None:
    job_id = _queued(store)
    store.jobs.claim("w", 60)

    with pytest.raises(GuardFailed) as caught:
        store.jobs.transition(job_id, {JobStatus.QUEUED}, JobStatus.CANCELLED)

    assert caught.value.actual is JobStatus.RUNNING
    assert "expected status in {queued}, found running" in str(caught.value)
    assert store.jobs.get(job_id).status is JobStatus.RUNNING
    assert len(store.jobs.history(job_id)) == 2


@pytest.mark.parametrize(
    ("sources", "target"),
    [
        ({JobStatus.PUBLISHED}, JobStatus.RUNNING),
        ({JobStatus.QUEUED}, JobStatus.PUBLISHED),
        (set(), JobStatus.QUEUED),
    ],
)
def test_edges_the_state_machine_lacks_are_refused(store: Store, sources: set, target: JobStatus) -> None:
    job_id = _queued(store)
    with pytest.raises(IllegalTransition):
        store.jobs.transition(job_id, sources, target)
    assert store.jobs.get(job_id).status is JobStatus.QUEUED


def test_every_status_but_published_has_a_way_out() -> None:
    stuck = [s for s, targets in JOB_TRANSITIONS.items() if not targets]
    assert stuck == [JobStatus.PUBLISHED]


def test_transition_refuses_fields_the_store_owns(store: Store) -> None:
    job_id = _queued(store)
    with pytest.raises(TypeError, match="attempts"):
        store.jobs.transition(job_id, {JobStatus.QUEUED}, JobStatus.CANCELLED, attempts=0)


def test_unknown_job(store: Store) -> None:
    with pytest.raises(NotFound):
        store.jobs.transition(999, {JobStatus.QUEUED}, JobStatus.CANCELLED)
    with pytest.raises(NotFound):
        store.jobs.get(999)


def test_only_the_lease_holder_may_finish_a_job(store: Store) -> None:
    job_id = _queued(store)
    store.jobs.claim("worker-a", 60)

    with pytest.raises(LeaseLost, match="no longer leased to worker-b: it is running, leased to worker-a"):
        store.jobs.transition(job_id, {JobStatus.RUNNING}, JobStatus.BUILT, owner="worker-b")
    with pytest.raises(LeaseLost):
        store.jobs.heartbeat(job_id, "worker-b", 60, progress=0.9)
    assert store.jobs.get(job_id).progress == 0.0


def test_cancel_mid_build_tells_the_worker_on_its_next_heartbeat(store: Store) -> None:
    job_id = _queued(store)
    store.jobs.claim("worker-a", 60)

    store.jobs.transition(job_id, {JobStatus.QUEUED, JobStatus.RUNNING}, JobStatus.CANCELLED, note="/cancel")

    with pytest.raises(LeaseLost):
        store.jobs.heartbeat(job_id, "worker-a", 60, progress=0.7)
    with pytest.raises(LeaseLost):
        store.jobs.transition(job_id, {JobStatus.RUNNING}, JobStatus.BUILT, owner="worker-a")
    job = store.jobs.get(job_id)
    assert job.status is JobStatus.CANCELLED and job.lease_owner is None
    assert store.jobs.history(job_id)[-1].note == "/cancel"


def test_progress_must_be_a_fraction(store: Store) -> None:
    job_id = _queued(store)
    store.jobs.claim("w", 60)
    with pytest.raises(ValueError, match="progress"):
        store.jobs.heartbeat(job_id, "w", 60, progress=1.5)


def test_claim_takes_the_oldest_and_none_when_empty(store: Store) -> None:
    assert store.jobs.claim("w", 60) is None
    first, second = _queued(store, "a"), _queued(store, "b")

    assert store.jobs.claim("w", 60).id == first
    assert store.jobs.claim("w", 60).id == second
    assert store.jobs.claim("w", 60) is None


def test_concurrent_claims_never_share_a_job(store: Store) -> None:
    ids = {_queued(store, f"key-{i}") for i in range(24)}
    claimed: dict[str, list[int]] = {}
    start = threading.Barrier(4)

    def worker(name: str) -> None:
        mine = claimed.setdefault(name, [])
        start.wait()
        while (job := store.jobs.claim(name, 60)) is not None:
            mine.append(job.id)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    everything = [job_id for jobs in claimed.values() for job_id in jobs]
    assert sorted(everything) == sorted(ids)  # each job exactly once
    assert all(store.jobs.get(i).attempts == 1 for i in ids)


def test_two_racing_for_one_job_one_wins(store: Store) -> None:
    job_id = _queued(store)
    results: list[object] = []
    start = threading.Barrier(2)

    def race(name: str) -> None:
        start.wait()
        results.append(store.jobs.claim(name, 60))

    threads = [threading.Thread(target=race, args=(name,)) for name in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    winners = [r for r in results if r is not None]
    assert len(winners) == 1 and winners[0].id == job_id


def test_expired_leases_are_requeued_and_live_ones_kept(store: Store) -> None:
    expired, alive, publishing = _queued(store, "a"), _queued(store, "b"), _queued(store, "c")
    store.jobs.claim("w1", 60)
    store.jobs.claim("w2", 60)
    store.jobs.claim("w3", 60)
    store.jobs.transition(publishing, {JobStatus.RUNNING}, JobStatus.BUILT, owner="w3")
    store.jobs.claim_publish("bot", 60)
    later = utcnow() + timedelta(seconds=90)
    store.jobs.heartbeat(alive, "w2", 120)  # extended past `later`

    moved = store.jobs.requeue_expired(now=later)

    assert sorted(moved) == sorted([expired, publishing])
    assert store.jobs.get(expired).status is JobStatus.QUEUED
    assert store.jobs.get(expired).lease_owner is None
    assert store.jobs.get(alive).status is JobStatus.RUNNING
    assert store.jobs.get(publishing).status is JobStatus.BUILT  # publish again, do not rebuild
    assert store.jobs.history(expired)[-1].note == "lease expired"
    with pytest.raises(LeaseLost):  # the old worker wakes up: its result is refused
        store.jobs.transition(expired, {JobStatus.RUNNING}, JobStatus.BUILT, owner="w1")
    again = store.jobs.claim("w4", 60)
    assert again is not None and again.id == expired and again.attempts == 2


def test_requeue_gives_up_after_max_attempts(store: Store) -> None:
    job_id = _queued(store)
    for attempt in range(2):
        store.jobs.claim(f"w{attempt}", 1)
        store.jobs.requeue_expired(now=utcnow() + timedelta(seconds=5), max_attempts=2)

    job = store.jobs.get(job_id)
    assert job.status is JobStatus.FAILED and job.attempts == 2
    assert "lease expired after 2 attempts" in job.error


def test_retry_after_failure_runs_again(store: Store) -> None:
    job_id = _queued(store)
    store.jobs.claim("w", 60)
    store.jobs.transition(job_id, {JobStatus.RUNNING}, JobStatus.FAILED, owner="w", error="OOM")
    store.jobs.transition(job_id, {JobStatus.FAILED, JobStatus.CANCELLED}, JobStatus.QUEUED, note="/retry")

    job = store.jobs.claim("w", 60)
    assert job is not None and job.id == job_id and job.attempts == 2 and job.error is None


def test_counts_and_duration_histogram(store: Store) -> None:
    done, waiting = _queued(store, "a"), _queued(store, "b")
    store.jobs.claim("w", 60)
    store.jobs.transition(done, {JobStatus.RUNNING}, JobStatus.BUILT, owner="w")

    counts = store.jobs.counts()
    assert counts[JobStatus.BUILT] == 1 and counts[JobStatus.QUEUED] == 1 and counts[JobStatus.FAILED] == 0
    histogram = store.jobs.durations("build", [0.0, 60.0])
    assert histogram.count == 1 and histogram.buckets[-1] == (60.0, 1)
    assert store.jobs.durations("publish", [60.0]).count == 0
    assert [j.id for j in store.jobs.list([JobStatus.QUEUED])] == [waiting]


_CLAIMER = """
import json, pathlib, sys, time
from state import open_store
store = open_store(sys.argv[1], upgrade=False)
store.ping()
go = pathlib.Path(sys.argv[2])
(go.parent / sys.argv[3]).touch()  # connected and ready
while not go.exists():
    time.sleep(0.005)
ids = []
while (job := store.jobs.claim(sys.argv[3], 60)) is not None:
    ids.append(job.id)
print(json.dumps(ids))
"""


def test_processes_claiming_at_once_never_share_a_job(store: Store, db_url: str, tmp_path) -> None:
    ids = {_queued(store, f"key-{i}") for i in range(30)}
    go = tmp_path / "go"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _CLAIMER, db_url, str(go), f"proc-{i}"], stdout=subprocess.PIPE, text=True
        )
        for i in range(3)
    ]
    deadline = time.monotonic() + 30
    while not all((tmp_path / f"proc-{i}").exists() for i in range(3)) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()  # every process connected: start them together
    outputs = [w.communicate(timeout=60)[0] for w in workers]

    assert all(w.returncode == 0 for w in workers)
    claimed = [job_id for out in outputs for job_id in json.loads(out)]
    assert sorted(claimed) == sorted(ids)


def test_late_engine_records_reach_the_published_jobs_manifest_and_only_its(store: Store) -> None:
    late = {"status": "succeeded", "engines": [{"sm": 90, "status": "not_built", "reason": "no GPU"}]}
    job_id = _queued(store)
    with pytest.raises(GuardFailed):  # a queued job has no release to follow
        store.lifecycle.record_late_engines(job_id, late)
    store.lifecycle.claim_build("celery", 60)
    store.lifecycle.finish_build(job_id, "celery", {"status": "succeeded", "engines": []})
    store.lifecycle.claim_publish("bot", 60)
    store.lifecycle.finish_publish(job_id, "bot", "released")
    seen: list = []
    store.changes.listen(seen.append)

    store.lifecycle.record_late_engines(job_id, late)

    job = store.jobs.get(job_id)
    assert job.status is JobStatus.PUBLISHED and job.manifest == late
    assert [e.to_status for e in store.jobs.history(job_id)][-1] is JobStatus.PUBLISHED, "no move recorded"
    assert [(c.job_id, c.moved, c.stage) for c in seen] == [(job_id, False, "engines")]
