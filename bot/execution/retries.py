"""Failed jobs tried again without anyone typing `/retry`, when their failure may pass.

A build or a publish that failed for a transient reason (the Hub down, failing or rate limiting: the move
to failed carries `state.lifecycle.TRANSIENT`) goes back after a backoff that doubles each time, a bounded
number of times: a publish to built (the build is kept), a build to the queue (it resumes after its last
finished stage). Permanent failures (not found, gated, licence, a card the Hub refuses) are left alone.
Housekeeping calls `sweep`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.settings import Settings
from state import GuardFailed, Job, JobStatus, Store
from state.lifecycle import TRANSIENT, build_succeeded

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Policy:
    """Which failures one kind of retry covers, how many times, and the first delay."""

    step: JobStatus  # the status the job failed from: publishing or running
    retries: int
    backoff_s: float


class Retries:
    """The retry policies of publishes and builds, applied to the failed jobs."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.store = store
        self.policies = (
            _Policy(JobStatus.PUBLISHING, settings.publish_retries, settings.publish_backoff_s),
            _Policy(JobStatus.RUNNING, settings.build_retries, settings.build_backoff_s),
        )

    def sweep(self, now: datetime) -> list[int]:
        """Move back every failed job whose transient failure's backoff has passed; their ids."""
        failed = self.store.jobs.list({JobStatus.FAILED}, limit=500)
        return [job.id for job in failed if self._retry(job, now)]

    def _retry(self, job: Job, now: datetime) -> bool:
        due = self.next_attempt(job)
        if due is None or now < due[1]:
            return False
        policy, _, tries = due
        lifecycle = self.store.lifecycle
        if policy.step is JobStatus.PUBLISHING and not build_succeeded(job):
            return False
        try:
            if policy.step is JobStatus.PUBLISHING:
                lifecycle.retry_publish(job.id, tries)
            else:
                lifecycle.retry_build(job.id, tries)
        except GuardFailed as e:  # retried by hand meanwhile
            log.info("job %d not retried: %s", job.id, e)
            return False
        what = "publish" if policy.step is JobStatus.PUBLISHING else "build"
        log.info("retrying the %s of job %d (attempt %d) after: %s", what, job.id, tries + 1, job.error)
        return True

    def next_attempt(self, job: Job) -> tuple[_Policy, datetime, int] | None:
        """The policy, time and count of failures so far, of the next retry of a failed job; None: never."""
        history = self.store.jobs.history(job.id)
        last = history[-1] if history else None
        if last is None or last.to_status is not JobStatus.FAILED or last.note != TRANSIENT:
            return None  # a permanent failure, or moved by hand
        policy = next((p for p in self.policies if p.step is last.from_status), None)
        if policy is None:
            return None
        tries = sum(1 for e in history if e.from_status is policy.step and e.to_status is JobStatus.FAILED)
        if tries > policy.retries:
            return None
        return policy, last.at + timedelta(seconds=policy.backoff_s * 2 ** (tries - 1)), tries
