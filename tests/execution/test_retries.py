"""Transient is never terminal: a step the Hub failed waits (queued or built, not claimed before its time) and
is tried again with a capped, jittered, doubling backoff that respects a 429's reset, until
`transient_deadline_h` has passed since its first failure; only then does the job fail, with the reason and
`/retry`. Permanent failures fail at once; unexpected errors get a bounded number of tries.

The policy's clock is the test's, so a day of outage takes no time; claims use the store's real clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bot.errors import CardRefused, HubRateLimited, HubUnavailable, RepoNotFound
from bot.retries import Cause, Retries, cause_of, cause_of_manifest, retry_after_s
from bot.settings import load_settings
from builders.spec import Manifest
from state import Job, JobStatus, Store
from state.lifecycle import retrying

START = datetime(2020, 1, 2, 3, 0, tzinfo=UTC)  # in the past, so the store claims what is due


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def _running(store: Store, key: str = "a") -> Job:
    store.jobs.enqueue(key * 64, {"format": "gptq"}, repo="alice/m")
    job = store.lifecycle.claim_build("w", 60)
    assert job is not None
    return job


def _publishing(store: Store, key: str = "p") -> Job:
    job = _running(store, key)
    store.lifecycle.finish_build(job.id, "w", {"status": "succeeded"})
    claimed = store.lifecycle.claim_publish("w", 60)
    assert claimed is not None
    return claimed


def _retries(store: Store, clock: Clock, jitter: float = 1.0, **settings: float) -> Retries:
    defaults = {"transient_deadline_h": 1.0, "build_backoff_s": 30, "publish_backoff_s": 30}
    return Retries(load_settings(None, **(defaults | settings)), store, clock=clock, jitter=lambda: jitter)


def test_a_build_the_hub_fails_waits_with_a_doubling_capped_backoff_until_the_deadline_then_fails(
    store: Store,
) -> None:
    clock = Clock()
    retries = _retries(store, clock, transient_backoff_max_s=600)
    job = _running(store)
    waits = []
    while True:
        moved = retries.build_failed(job, "w", "fetch: could not download: 503", None, Cause.HUB)
        assert moved is not None
        if moved.status is JobStatus.FAILED:
            break
        assert moved.status is JobStatus.QUEUED and moved.error == "fetch: could not download: 503"
        assert moved.transient_since == START  # the deadline counts from the first failure
        waits.append((moved.retry_at - clock.now).total_seconds())
        assert (
            retrying(moved) == f"retrying at {moved.retry_at:%Y-%m-%d %H:%M:%S} UTC, attempt {len(waits) + 1}"
        )
        clock.now = moved.retry_at  # the wait is over: the next try fails too
        claimed = store.lifecycle.claim_build("w", 60)
        assert claimed is not None and claimed.id == job.id
        job = claimed
    assert waits[:6] == [30, 60, 120, 240, 480, 600]  # doubling, capped at transient_backoff_max_s
    assert clock.now == START + timedelta(hours=1)  # the last try is at the deadline, not after it
    assert sum(waits) == 3600
    failed = store.jobs.get(job.id)
    assert failed.error.startswith(
        "fetch: could not download: 503 (the Hub kept failing since 2020-01-02 03:00"
    )
    assert f"{len(waits) + 1} attempts" in failed.error and "`/retry`" in failed.error
    assert retrying(failed) is None


def test_jitter_spreads_the_waits_and_a_429_reset_is_never_cut_short(store: Store) -> None:
    clock = Clock()
    early = _retries(store, clock, jitter=0.0).build_failed(_running(store, "j"), "w", "503", None, Cause.HUB)
    assert early is not None and (early.retry_at - START).total_seconds() == 15  # half the backoff at least
    limited = HubRateLimited("rate limited", response=httpx.Response(429, headers={"Retry-After": "240"}))
    asked = retry_after_s(limited)
    assert asked == 240
    job = _retries(store, clock).publish_failed(
        _publishing(store), "w", str(limited), cause_of(limited), asked
    )
    assert job is not None and job.status is JobStatus.BUILT and (job.retry_at - START).total_seconds() == 240
    reset = HubUnavailable("x", response=httpx.Response(429, headers={"RateLimit": '"api";r=0;t=97'}))
    assert retry_after_s(reset) == 97


def test_a_waiting_step_is_not_claimed_before_its_time(store: Store) -> None:
    retries = Retries(load_settings(None, publish_backoff_s=3600), store)
    job = _publishing(store)
    waiting = retries.publish_failed(job, "w", "the Hub failed with 503", Cause.HUB)
    assert waiting is not None and waiting.status is JobStatus.BUILT and waiting.attempts == 1  # build kept
    assert waiting.error == "publish failed: the Hub failed with 503"
    assert store.lifecycle.claim_publish("w", 60) is None
    over = _publishing(store, "o")  # another, whose wait is over by now
    _retries(store, Clock()).publish_failed(over, "w", "the Hub failed with 503", Cause.HUB)
    claimed = store.lifecycle.claim_publish("w", 60)
    assert claimed is not None and claimed.id == over.id and claimed.retry_at is None
    done = store.lifecycle.finish_publish(over.id, "w", "published")
    assert done is not None and done.transient_since is None and done.transient_tries == 0


def test_permanent_failures_fail_at_once_and_unexpected_ones_are_tried_a_bounded_number_of_times(
    store: Store,
) -> None:
    clock = Clock()
    retries = _retries(store, clock, publish_retries=2)
    refused = CardRefused('the Hub refused the card\'s metadata: "license" must be one of [...]', [])
    failed = retries.publish_failed(_publishing(store), "w", str(refused), cause_of(refused))
    assert failed is not None and failed.status is JobStatus.FAILED
    assert failed.error == f"publish failed: {refused}"  # the Hub's words, no retry talk

    job = _publishing(store, "b")
    for _ in range(2):
        moved = retries.publish_failed(job, "w", "KeyError: 'x'", Cause.OTHER)
        assert moved is not None and moved.status is JobStatus.BUILT
        again = store.lifecycle.claim_publish("w", 60)
        assert again is not None and again.id == job.id
        job = again
    gave_up = retries.publish_failed(job, "w", "KeyError: 'x'", Cause.OTHER)
    assert gave_up is not None and gave_up.status is JobStatus.FAILED and "3 attempts" in gave_up.error


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (HubUnavailable("the Hub failed with 503"), Cause.HUB),
        (HubRateLimited("rate limited by the Hub's Xet storage"), Cause.HUB),
        (httpx.ConnectError("connection refused"), Cause.HUB),
        (TimeoutError("timed out"), Cause.HUB),
        (RepoNotFound("repo not found"), Cause.PERMANENT),
        (CardRefused("refused", []), Cause.PERMANENT),
        (KeyError("a bug"), Cause.OTHER),
    ],
)
def test_causes(error: BaseException, cause: Cause) -> None:
    assert cause_of(error) is cause


def test_a_builders_hub_failure_is_the_hubs_and_others_are_permanent() -> None:
    failed = {"started_at": "2026-12-07T00:00:00Z", "status": "failed"}
    errors = [{"stage": "fetch", "kind": "hub_unavailable", "message": "503"}]
    assert cause_of_manifest(Manifest.model_validate(failed | {"errors": errors})) is Cause.HUB
    errors = [{"stage": "quantize", "kind": "calibration_unavailable", "message": "gone"}]
    assert cause_of_manifest(Manifest.model_validate(failed | {"errors": errors})) is Cause.PERMANENT
    assert cause_of_manifest(None) is Cause.PERMANENT
