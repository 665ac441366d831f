"""Tasks to Celery workers on other machines through a Redis broker, one queue per SM (DESIGN.md, decision 5).

A task is sent by name with its `TaskRequest` as JSON (`bot.host.celery_app`: no pickle), under the id the
bot chose, so a restarted bot reads the same task from the result backend. What the result backend says is
what the orchestrator hears: `PROGRESS` with the worker's `TaskReport` (its `beat` changes while the worker
lives), `SUCCESS` with its `TaskResult`, `FAILURE` or `REVOKED`. A cancelled or lost task is fenced (a
worker started later skips it), revoked and terminated.
"""

from __future__ import annotations

import logging
import time

from celery import Celery
from celery.result import AsyncResult

from bot.execution.transport import Phase, Seen, Sent, Transport, TransportError
from bot.host.celery_app import ENGINE_TASK, PROGRESS, QUANTIZE_TASK, broker_answers, fence
from bot.retries import Cause, cause_of
from builders.spec import TaskPlan, TaskReport, TaskRequest, TaskResult
from state import JobTask

log = logging.getLogger(__name__)

_ALIVE = ("STARTED", PROGRESS)


class CeleryTransport(Transport):
    """Sends tasks to `quantbot worker`s and reads their state from the result backend."""

    owner = "celery"  # the lease holder of every job out on the queues: a restarted bot holds them again

    def __init__(self, app: Celery) -> None:
        self.app = app
        self._down_since: float | None = None

    def ready(self) -> bool:
        """Whether the broker answers; said once in the log when it stops and when it is back."""
        if broker_answers(self.app):
            if self._down_since is not None:
                down = time.monotonic() - self._down_since
                log.warning("the broker answers again after %.0fs; sending the queued jobs", down)
                self._down_since = None
            return True
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("the broker does not answer; jobs stay queued in the store until it does")
        return False

    def queue(self, plan: TaskPlan) -> str:
        return plan.queue

    def send(self, request: TaskRequest, task_id: str) -> Sent:
        name = QUANTIZE_TASK if request.kind == "quantize" else ENGINE_TASK
        kwargs = {"request": request.model_dump(mode="json")}
        try:
            self.app.send_task(name, kwargs=kwargs, task_id=task_id, queue=request.queue)
        except Exception as e:  # kombu's OperationalError, redis' ConnectionError, OSError
            raise TransportError(f"the broker did not take it ({type(e).__name__})", transient=True) from e
        return Sent(task_id, request.queue)

    def status(self, task: JobTask) -> Seen:
        result = AsyncResult(task.task_id, app=self.app)
        state = result.state
        if state in _ALIVE:
            info = result.info if isinstance(result.info, dict) else {}
            if "stage" not in info:  # STARTED: Celery's own record of who took it, no report yet
                return Seen(Phase.RUNNING, beat="started", worker=info.get("hostname"))
            report = TaskReport.model_validate(info)
            where = f"on {report.worker}, queue {report.queue}"
            return Seen(Phase.RUNNING, report, beat=str(report.beat), worker=report.worker, where=where)
        if state == "SUCCESS":
            done = TaskResult.model_validate(result.result or {})
            return Seen(Phase.SUCCEEDED, result=done, worker=done.worker)
        if state in ("FAILURE", "REVOKED"):
            cause = cause_of(result.info) if isinstance(result.info, BaseException) else Cause.OTHER
            return Seen(Phase.FAILED, error=f"{state.lower()}: {result.info!r}"[:500], cause=cause)
        return Seen(Phase.WAITING)

    def cancel(self, task: JobTask) -> Seen:
        """Fence, revoke and terminate the task (the store records it even when the broker is down)."""
        try:
            fence(self.app, [task.task_id])
            self.app.control.revoke([task.task_id], terminate=True, signal="SIGTERM")
        except Exception as e:
            log.warning("could not reach the broker to revoke %s (%s)", task.task_id, type(e).__name__)
        return Seen(Phase.CANCELLED)
