"""Housekeeping retries what failed for a transient reason (the Hub down or busy), bounded and with a
doubling backoff, and leaves permanent failures (not found, gated, a refused card) failed with their reason.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.execution.retries import Retries
from bot.settings import load_settings
from state import JobStatus, Store


def _running(store: Store, key: str) -> int:
    job, _ = store.jobs.enqueue(key * 64, {"format": "gptq"}, repo="alice/m")
    store.lifecycle.claim_build("w", 60)
    return job.id


def _retries(store: Store) -> Retries:
    settings = load_settings(
        None, build_retries=2, build_backoff_s=30, publish_retries=1, publish_backoff_s=30
    )
    return Retries(settings, store)


def test_a_build_failed_by_a_hub_outage_is_queued_again_after_its_backoff_a_bounded_number_of_times(
    store: Store,
) -> None:
    job_id = _running(store, "a")
    retries = _retries(store)
    for attempt, backoff in ((1, 30), (2, 60)):
        store.lifecycle.fail_build(job_id, "w", "fetch: could not download: 503", None, transient=True)
        failed_at = store.jobs.history(job_id)[-1].at
        assert retries.sweep(failed_at + timedelta(seconds=backoff - 1)) == []  # not yet
        assert retries.sweep(failed_at + timedelta(seconds=backoff + 1)) == [job_id]
        assert store.jobs.get(job_id).status is JobStatus.QUEUED
        assert store.jobs.history(job_id)[-1].note == f"build retry {attempt}"
        store.lifecycle.claim_build("w", 60)
    store.lifecycle.fail_build(job_id, "w", "fetch: could not download: 503", None, transient=True)
    assert retries.sweep(datetime.now(UTC) + timedelta(days=1)) == []  # build_retries=2: given up
    assert store.jobs.get(job_id).error == "fetch: could not download: 503"


def test_permanent_failures_are_left_failed_with_their_reason(store: Store) -> None:
    gated = _running(store, "g")
    store.lifecycle.fail_build(gated, "w", "fetch: alice/m is gated and this token has no access", None)
    refused = _running(store, "r")
    store.lifecycle.finish_build(refused, "w", {"status": "succeeded"})
    store.lifecycle.claim_publish("w", 60)
    reason = 'the Hub refused the card\'s metadata: "license" must be one of [apache-2.0, mit, ...]'
    store.lifecycle.fail_publish(refused, "w", reason, transient=False)

    assert _retries(store).sweep(datetime.now(UTC) + timedelta(days=1)) == []
    assert store.jobs.get(gated).status is JobStatus.FAILED
    assert store.jobs.get(refused).error == f"publish failed: {reason}"


def test_a_publish_failed_by_the_hub_goes_back_to_built_and_keeps_the_build(store: Store) -> None:
    job_id = _running(store, "p")
    store.lifecycle.finish_build(job_id, "w", {"status": "succeeded"})
    store.lifecycle.claim_publish("w", 60)
    store.lifecycle.fail_publish(job_id, "w", "the Hub failed with 503")
    failed_at = store.jobs.history(job_id)[-1].at
    assert _retries(store).sweep(failed_at + timedelta(seconds=31)) == [job_id]
    job = store.jobs.get(job_id)
    assert job.status is JobStatus.BUILT and job.attempts == 1  # not built again
