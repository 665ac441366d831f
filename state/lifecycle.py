"""The one owner of job status: every move of a job, named by a verb for why it happens.

The executor, housekeeping and the `/cancel` and `/retry` commands ask this module; none of them picks
source and target statuses itself, so what each move may start from is decided here, once, on top of the
guarded primitives of `state.jobs` (which refuse any edge `JOB_TRANSITIONS` lacks). One convention for
every move: it returns the moved job, or raises `GuardFailed` (`LeaseLost` for a worker that no longer
holds the lease) when the job was not where the move starts; a caller that expects the race says so.
The claims answer None when there is nothing to claim.
"""

from __future__ import annotations

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


def build_succeeded(job: Job) -> bool:
    """Whether the job's build succeeded (its manifest says so), whatever became of its publish."""
    return (job.manifest or {}).get("status") == "succeeded"


class JobLifecycle:
    """Moves of jobs, for the executor, housekeeping and commands."""

    def __init__(self, jobs: JobStore) -> None:
        self._jobs = jobs

    # -- building ------------------------------------------------------------------------------------

    def claim_build(self, worker: str, lease_s: float) -> Job | None:
        """The oldest queued job, now running and leased to `worker`; None when the queue is empty."""
        return self._jobs.claim(worker, lease_s)

    def fail_start(self, job_id: int, owner: str, error: str) -> Job:
        """The claimed build could not even start (bad spec, no worker command, over the budget)."""
        return self._move(job_id, {JobStatus.RUNNING}, JobStatus.FAILED, owner=owner, error=error)

    def finish_build(self, job_id: int, owner: str, manifest: dict[str, Any]) -> Job:
        """The worker finished and its manifest says the build succeeded: ready to publish."""
        return self._move(
            job_id,
            {JobStatus.RUNNING},
            JobStatus.BUILT,
            owner=owner,
            manifest=manifest,
            progress_message="built",
            **RECOVERED,
        )

    def fail_build(self, job_id: int, owner: str, error: str, manifest: dict[str, Any] | None) -> Job:
        """The worker failed (its manifest says why, or it died without one), for good: `/retry` it."""
        return self._move(
            job_id, {JobStatus.RUNNING}, JobStatus.FAILED, owner=owner, manifest=manifest, error=error
        )

    def defer_build(self, job_id: int, owner: str, error: str, wait: Wait) -> Job:
        """The Hub failed the build: back to the queue, not claimed before `wait.retry_at`."""
        note = f"{TRANSIENT}: {wait.words}"
        return self._move(
            job_id,
            {JobStatus.RUNNING},
            JobStatus.QUEUED,
            owner=owner,
            note=note,
            error=error,
            **wait.fields(),
        )

    def adopt(self, job_id: int, dead_owner: str, owner: str, lease_s: float, what: str) -> Job:
        """A restarted bot re-attaches to what its dead predecessor started (`what`: "builder pid 12"): the
        job stays running."""
        return self._jobs.take_over(job_id, dead_owner, owner, lease_s, f"re-attached to {what}")

    def give_back(self, job_id: int, owner: str, note: str) -> Job:
        """The bot is stopping: the build goes back to the queue and resumes on the next start."""
        return self._move(job_id, {JobStatus.RUNNING}, JobStatus.QUEUED, owner=owner, note=note)

    def requeue_unsent(self, job_id: int, owner: str, note: str) -> Job:
        """The transport did not take the job's task: back to the queue, to be sent when it answers."""
        return self._move(job_id, {JobStatus.RUNNING}, JobStatus.QUEUED, owner=owner, note=note)

    # -- publishing ----------------------------------------------------------------------------------

    def claim_publish(self, worker: str, lease_s: float) -> Job | None:
        """The oldest built job, now publishing and leased to `worker`; None when there is none."""
        return self._jobs.claim_publish(worker, lease_s)

    def finish_publish(self, job_id: int, owner: str, message: str) -> Job:
        """The release was made."""
        done = {"progress_message": message, **RECOVERED}
        return self._move(job_id, {JobStatus.PUBLISHING}, JobStatus.PUBLISHED, owner=owner, **done)

    def fail_publish(self, job_id: int, owner: str, error: str) -> Job:
        """The publish step failed for good (a refused card, no access, or the Hub past the deadline)."""
        return self._move(
            job_id, {JobStatus.PUBLISHING}, JobStatus.FAILED, owner=owner, error=f"publish failed: {error}"
        )

    def defer_publish(self, job_id: int, owner: str, error: str, wait: Wait) -> Job:
        """The Hub failed the publish: the build is kept (built), published again from `wait.retry_at`."""
        note, reason = f"{TRANSIENT}: {wait.words}", f"publish failed: {error}"
        return self._move(
            job_id,
            {JobStatus.PUBLISHING},
            JobStatus.BUILT,
            owner=owner,
            note=note,
            error=reason,
            **wait.fields(),
        )

    def record_late_engines(self, job_id: int, manifest: dict[str, Any]) -> Job:
        """Engine records committed to a published release after it was made: the job's manifest follows
        the release's, for the status page and whatever reads the job later."""
        moved = self._jobs.set_manifest(job_id, manifest, {JobStatus.PUBLISHED})
        if moved is None:
            raise GuardFailed("job", job_id, {JobStatus.PUBLISHED}, "no longer published")
        return moved

    # -- housekeeping and commands -------------------------------------------------------------------

    def requeue_expired(self, now: datetime | None = None, max_attempts: int | None = None) -> list[int]:
        """Jobs whose worker stopped renewing its lease go back (or fail after `max_attempts`)."""
        return self._jobs.requeue_expired(now, max_attempts=max_attempts)

    def start_now(self, job_id: int) -> Job | None:
        """`/quantize --now`: a queued job waiting for its upstream's cooldown may be claimed at once; None
        when the job is no longer queued (nothing to hurry)."""
        return self._jobs.start_now(job_id)

    def cancel(self, job_id: int, note: str = "cancelled") -> Job:
        """Cancel a queued, running or built job (its executor stops the process)."""
        return self._move(job_id, CANCELLABLE, JobStatus.CANCELLED, note=note)

    def retry(self, job: Job, note: str) -> Job:
        """Retry a failed or cancelled job: only the publish when the build itself succeeded."""
        if job.status not in RETRYABLE:
            raise GuardFailed("job", job.id, RETRYABLE, job.status)
        publish_only = job.status is JobStatus.FAILED and build_succeeded(job)
        target = JobStatus.BUILT if publish_only else JobStatus.QUEUED
        return self._move(job.id, {job.status}, target, note=note, **RECOVERED)

    def _move(
        self, job_id: int, sources: set[JobStatus] | frozenset[JobStatus], target: JobStatus, **fields: Any
    ) -> Job:
        return self._jobs.transition(job_id, sources, target, **fields)
