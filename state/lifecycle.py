"""The one owner of job status: every move of a job, named for why it happens.

The executor, housekeeping and the `/cancel` and `/retry` commands ask this module; none of them picks
source and target statuses itself, so what each move may start from is decided here, once, on top of the
guarded primitives of `state.jobs` (which refuse any edge `JOB_TRANSITIONS` lacks). A move whose guard does
not hold raises `GuardFailed` (or `LeaseLost` for a worker that no longer holds the lease), except where the
method says it answers None.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from state.errors import GuardFailed
from state.jobs import JobStore
from state.models import Job, JobStatus

# The note on a move back (to queued or built) that waits out a failure the Hub caused.
TRANSIENT = "transient"
# What a step that succeeds resets: the transient failures of the step before it are over.
RECOVERED: dict[str, Any] = {"retry_at": None, "transient_since": None, "transient_tries": 0}
CANCELLABLE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.BUILT})
RETRYABLE = frozenset({JobStatus.FAILED, JobStatus.CANCELLED})


@dataclass(frozen=True)
class Wait:
    """A step the Hub failed tries again at `retry_at`: its `attempt`-th try since `since`."""

    retry_at: datetime
    since: datetime
    attempt: int

    @property
    def words(self) -> str:
        return retry_words(self.retry_at, self.attempt)

    def fields(self) -> dict[str, Any]:
        return {"retry_at": self.retry_at, "transient_since": self.since, "transient_tries": self.attempt - 1}


def retry_words(at: datetime, attempt: int) -> str:
    """How the status page and replies say when a waiting step tries again."""
    return f"retrying at {at.strftime('%Y-%m-%d %H:%M:%S')} UTC, attempt {attempt}"


def retrying(job: Job) -> str | None:
    """The words for a job waiting out a failure the Hub caused ("retrying at …, attempt n"), else None."""
    if job.retry_at is None or job.status not in (JobStatus.QUEUED, JobStatus.BUILT):
        return None
    return retry_words(job.retry_at, job.transient_tries + 1)


class JobLifecycle:
    """Moves of jobs, for the executor, housekeeping and commands."""

    def __init__(self, jobs: JobStore) -> None:
        self._jobs = jobs

    # -- building ------------------------------------------------------------------------------------

    def claim_build(self, worker: str, lease_s: float) -> Job | None:
        """The oldest queued job, now running and leased to `worker`; None when the queue is empty."""
        return self._jobs.claim(worker, lease_s)

    def start_failed(self, job_id: int, owner: str, error: str) -> Job | None:
        """The claimed build could not even start (bad spec, no worker command)."""
        return self._quietly(job_id, {JobStatus.RUNNING}, JobStatus.FAILED, owner=owner, error=error)

    def built(self, job_id: int, owner: str, manifest: dict[str, Any]) -> Job:
        """The worker finished and its manifest says the build succeeded: ready to publish."""
        return self._jobs.transition(
            job_id, {JobStatus.RUNNING}, JobStatus.BUILT, owner=owner, manifest=manifest,
            progress_message="built", **RECOVERED,
        )  # fmt: skip

    def build_failed(self, job_id: int, owner: str, error: str, manifest: dict[str, Any] | None) -> Job:
        """The worker failed (its manifest says why, or it died without one), for good: `/retry` it."""
        return self._jobs.transition(
            job_id, {JobStatus.RUNNING}, JobStatus.FAILED, owner=owner, manifest=manifest, error=error
        )

    def build_waits(self, job_id: int, owner: str, error: str, wait: Wait) -> Job:
        """The Hub failed the build: back to the queue, not claimed before `wait.retry_at`."""
        note = f"{TRANSIENT}: {wait.words}"
        return self._jobs.transition(
            job_id,
            {JobStatus.RUNNING},
            JobStatus.QUEUED,
            owner=owner,
            note=note,
            error=error,
            **wait.fields(),
        )

    def adopt(self, job_id: int, dead_owner: str, owner: str, lease_s: float, pid: int) -> Job:
        """A restarted bot re-attaches to the builder its dead predecessor started: the job stays running."""
        return self._jobs.take_over(job_id, dead_owner, owner, lease_s, f"re-attached to builder pid {pid}")

    def give_back(self, job_id: int, owner: str, note: str) -> Job:
        """The bot is stopping: the build goes back to the queue and resumes on the next start."""
        return self._jobs.transition(job_id, {JobStatus.RUNNING}, JobStatus.QUEUED, owner=owner, note=note)

    def unsent(self, job_id: int, owner: str, note: str) -> Job | None:
        """The broker did not take the job's task: back to the queue, to be sent when it answers."""
        return self._quietly(job_id, {JobStatus.RUNNING}, JobStatus.QUEUED, owner=owner, note=note)

    # -- publishing ----------------------------------------------------------------------------------

    def claim_publish(self, worker: str, lease_s: float) -> Job | None:
        """The oldest built job, now publishing and leased to `worker`; None when there is none."""
        return self._jobs.claim_publish(worker, lease_s)

    def published(self, job_id: int, owner: str, message: str) -> Job | None:
        """The release was made (None if the job was moved meanwhile, e.g. cancelled)."""
        done = {"progress_message": message, **RECOVERED}
        return self._quietly(job_id, {JobStatus.PUBLISHING}, JobStatus.PUBLISHED, owner=owner, **done)

    def publish_failed(self, job_id: int, owner: str, error: str) -> Job | None:
        """The publish step failed for good (a refused card, no access, or the Hub past the deadline)."""
        return self._quietly(
            job_id, {JobStatus.PUBLISHING}, JobStatus.FAILED, owner=owner, error=f"publish failed: {error}"
        )

    def publish_waits(self, job_id: int, owner: str, error: str, wait: Wait) -> Job | None:
        """The Hub failed the publish: the build is kept (built), published again from `wait.retry_at`."""
        note, reason = f"{TRANSIENT}: {wait.words}", f"publish failed: {error}"
        return self._quietly(
            job_id,
            {JobStatus.PUBLISHING},
            JobStatus.BUILT,
            owner=owner,
            note=note,
            error=reason,
            **wait.fields(),
        )

    def late_engines(self, job_id: int, manifest: dict[str, Any]) -> Job | None:
        """Engine records committed to a published release after it was made: the job's manifest follows
        the release's, for the status page and whatever reads the job later (None if no longer published)."""
        return self._jobs.set_manifest(job_id, manifest, {JobStatus.PUBLISHED})

    # -- housekeeping and commands -------------------------------------------------------------------

    def requeue_expired(self, now: datetime | None = None, max_attempts: int | None = None) -> list[int]:
        """Jobs whose worker stopped renewing its lease go back (or fail after `max_attempts`)."""
        return self._jobs.requeue_expired(now, max_attempts=max_attempts)

    def start_now(self, job_id: int) -> Job | None:
        """`/quantize --now`: a queued job waiting for its upstream's cooldown may be claimed at once."""
        return self._jobs.start_now(job_id)

    def cancel(self, job_id: int, note: str = "cancelled") -> Job | None:
        """Cancel a queued, running or built job (its executor stops the process); None if past that."""
        return self._quietly(job_id, CANCELLABLE, JobStatus.CANCELLED, note=note)

    def retry(self, job: Job, note: str) -> Job | None:
        """Retry a failed or cancelled job: only the publish when the build itself succeeded."""
        publish_only = job.status is JobStatus.FAILED and (job.manifest or {}).get("status") == "succeeded"
        target = JobStatus.BUILT if publish_only else JobStatus.QUEUED
        if job.status not in RETRYABLE:
            return None
        return self._quietly(job.id, {job.status}, target, note=note, **RECOVERED)

    def _quietly(self, job_id: int, sources: set[JobStatus] | frozenset[JobStatus], target: JobStatus,
                 **fields: Any) -> Job | None:  # fmt: skip
        with contextlib.suppress(GuardFailed):
            return self._jobs.transition(job_id, sources, target, **fields)
        return None
