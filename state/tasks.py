"""Remote tasks of jobs: which task ids a job fanned out to, on which queue, and what each worker reported.

The Celery executor writes these rows (workers never see the database); the status page and a restarted
bot read them, so a bot that stops and starts again follows the same tasks instead of sending new ones.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from state.db import Database, insert_ignoring_conflict
from state.models import FINISHED_TASK_STATES, Job, JobTask, TaskState, utcnow


class TaskStore:
    """The `job_tasks` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(
        self, job_id: int, task_id: str, *, kind: str, queue: str, sm: int | None = None, attempt: int = 1
    ) -> JobTask:
        """Record a task about to be sent (once per task id: a repeat returns the row already there)."""
        now = utcnow()
        row = {
            "job_id": job_id,
            "task_id": task_id,
            "kind": kind,
            "queue": queue,
            "sm": sm,
            "attempt": attempt,
            "state": TaskState.SENT,
            "sent_at": now,
            "updated_at": now,
        }
        stmt = insert_ignoring_conflict(self._db.dialect, JobTask, "task_id").values(row)
        with self._db.write() as s:
            s.execute(stmt)
            return s.execute(select(JobTask).where(JobTask.task_id == task_id)).scalar_one()

    def update(self, task_id: str, **values: Any) -> None:
        """Record what the backend says of a task (state, worker, message, result)."""
        values["updated_at"] = utcnow()
        if values.get("state") in FINISHED_TASK_STATES:
            values["finished_at"] = values["updated_at"]
        with self._db.write() as s:
            s.execute(
                update(JobTask)
                .where(JobTask.task_id == task_id)
                .values(values)
                .execution_options(synchronize_session=False)
            )

    def of_job(self, job_id: int) -> list[JobTask]:
        """Every task of a job, oldest first."""
        with self._db.read() as s:
            return list(s.scalars(select(JobTask).where(JobTask.job_id == job_id).order_by(JobTask.id)))

    def unfinished(self) -> list[JobTask]:
        """Tasks still sent or started, of any job, oldest first."""
        query = select(JobTask).where(JobTask.state.not_in(list(FINISHED_TASK_STATES))).order_by(JobTask.id)
        with self._db.read() as s:
            return list(s.scalars(query))

    def spent_since(self, since: datetime) -> float:
        """USD recorded for tasks (Hugging Face Jobs) that finished at or after `since`."""
        query = select(func.coalesce(func.sum(JobTask.cost_usd), 0.0)).where(JobTask.finished_at >= since)
        with self._db.read() as s:
            return float(s.execute(query).scalar_one() or 0.0)

    def workers(self, job_ids: list[int]) -> dict[int, list[JobTask]]:
        """The tasks of some jobs (for the status page: which worker and queue runs each)."""
        query = select(JobTask).join(Job, Job.id == JobTask.job_id).where(JobTask.job_id.in_(job_ids))
        found: dict[int, list[JobTask]] = {}
        with self._db.read() as s:
            for task in s.scalars(query.order_by(JobTask.id)):
                found.setdefault(task.job_id, []).append(task)
        return found
