"""The one owner of job status: every move of a job, named by a verb for why it happens.

The executor, housekeeping and the `/cancel` and `/retry` commands ask this module; none of them picks
source and target statuses itself, so what each move may start from is decided here, once, on top of the
guarded primitives of `state.jobs` (which refuse any edge `JOB_TRANSITIONS` lacks). One convention for
every move: it returns the moved job, or raises `GuardFailed` (`LeaseLost` for a worker that no longer
holds the lease) when the job was not where the move starts; a caller that expects the race says so.
The claims answer None when there is nothing to claim.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from state.errors import GuardFailed
from state.jobs import JobStore
from state.models import Job, JobStatus

# The note on a move to failed whose cause may pass (the Hub down or busy): housekeeping retries those.
TRANSIENT = "transient"
CANCELLABLE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.BUILT})
RETRYABLE = frozenset({JobStatus.FAILED, JobStatus.CANCELLED})


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
        )

    def fail_build(
        self, job_id: int, owner: str, error: str, manifest: dict[str, Any] | None, *, transient: bool = False
    ) -> Job:
        """The worker failed (its manifest says why, or it died without one); `transient`: worth a retry."""
        return self._move(
            job_id,
            {JobStatus.RUNNING},
            JobStatus.FAILED,
            owner=owner,
            manifest=manifest,
            error=error,
            note=TRANSIENT if transient else None,
        )

    def adopt(self, job_id: int, dead_owner: str, owner: str, lease_s: float, pid: int) -> Job:
        """A restarted bot re-attaches to the builder its dead predecessor started: the job stays running."""
        return self._jobs.take_over(job_id, dead_owner, owner, lease_s, f"re-attached to builder pid {pid}")

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
        return self._move(
            job_id, {JobStatus.PUBLISHING}, JobStatus.PUBLISHED, owner=owner, progress_message=message
        )

    def fail_publish(self, job_id: int, owner: str, error: str, *, transient: bool = True) -> Job:
        """The publish step failed; housekeeping retries it (`retry_publish`) when `transient`."""
        return self._move(
            job_id,
            {JobStatus.PUBLISHING},
            JobStatus.FAILED,
            owner=owner,
            error=f"publish failed: {error}",
            note=TRANSIENT if transient else None,
        )

    def retry_publish(self, job_id: int, attempt: int) -> Job:
        """Housekeeping's backoff has passed: a failed publish of a good build goes back to built."""
        return self._move(job_id, {JobStatus.FAILED}, JobStatus.BUILT, note=f"publish retry {attempt}")

    def record_late_engines(self, job_id: int, manifest: dict[str, Any]) -> Job:
        """Engine records committed to a published release after it was made: the job's manifest follows
        the release's, for the status page and whatever reads the job later."""
        moved = self._jobs.set_manifest(job_id, manifest, {JobStatus.PUBLISHED})
        if moved is None:
            raise GuardFailed("job", job_id, {JobStatus.PUBLISHED}, "no longer published")
        return moved

    def retry_build(self, job_id: int, attempt: int) -> Job:
        """Housekeeping's backoff has passed: a build that failed for a transient reason is queued again."""
        return self._move(job_id, {JobStatus.FAILED}, JobStatus.QUEUED, note=f"build retry {attempt}")

    # -- housekeeping and commands -------------------------------------------------------------------

    def requeue_expired(self, now: datetime | None = None, max_attempts: int | None = None) -> list[int]:
        """Jobs whose worker stopped renewing its lease go back (or fail after `max_attempts`)."""
        return self._jobs.requeue_expired(now, max_attempts=max_attempts)

    def cancel(self, job_id: int, note: str = "cancelled") -> Job:
        """Cancel a queued, running or built job (its executor stops the process)."""
        return self._move(job_id, CANCELLABLE, JobStatus.CANCELLED, note=note)

    def retry(self, job: Job, note: str) -> Job:
        """Retry a failed or cancelled job: only the publish when the build itself succeeded."""
        if job.status not in RETRYABLE:
            raise GuardFailed("job", job.id, RETRYABLE, job.status)
        publish_only = job.status is JobStatus.FAILED and build_succeeded(job)
        target = JobStatus.BUILT if publish_only else JobStatus.QUEUED
        return self._move(job.id, {job.status}, target, note=note)

    def _move(
        self, job_id: int, sources: set[JobStatus] | frozenset[JobStatus], target: JobStatus, **fields: Any
    ) -> Job:
        return self._jobs.transition(job_id, sources, target, **fields)
