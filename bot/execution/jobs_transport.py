"""Tasks as Hugging Face Jobs: each quantize or engine task runs as a Job on the flavour its plan names.

The fan-out and fan-in are the orchestrator's (quantize once, an engine per SM, the bot finalising the draft
PR); this is only the transport. A task is sent with `run_job` (through `bot.hub`): the worker image
(`jobs_image`), the command `quantbot task quantize|engine` with its `TaskRequest` in `QUANTBOT_TASK`, the
Hub token as the Job secret `HF_TOKEN` (never in the command, the environment or a log), the flavour the
job's stored plan names (chosen when it was queued; the quantize Job on the cheapest of the job's flavours)
and `jobs_timeout_s`. The task's row in `job_tasks` is the Job: its id, its flavour (`queue`) and its URL
(`worker`).

Each round: `inspect_job` gives the stage; a thread per running Job follows its log (`fetch_job_logs`),
where the task prints its progress and, at the end, its result as JSON lines. `COMPLETED` → the result is
recorded as the Celery result would be; `ERROR` → the task fails with the tail of the Job's log (an engine
Job's failure is that SM's record); a timeout (`ERROR`, "timeout") or a Job the Hub lost (`DELETED`, gone) is
sent again within `max_attempts`. `/cancel` cancels every Job of the job. A Job's runtime and its cost at
the flavour's price are recorded when it ends.

The log followers are threads, not runs of the bot's scheduler: a Job's log is a stream that ends with the
Job, and read without following it still waits for 5 s of silence, so either way a read would hold one of
the scheduler's workers (and the bot's stopping) for as long as the Job runs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections import deque
from collections.abc import Callable
from functools import cached_property

from huggingface_hub import JobInfo

from bot.eligibility.flavors import Flavors
from bot.errors import HubError
from bot.execution.transport import Phase, Seen, Sent, Transport, TransportError
from bot.host.one_task import PROGRESS_KEY, RESULT_KEY, TASK_ENV
from bot.hub import Hub
from bot.retries import Cause, cause_of, cause_of_manifest
from bot.settings import Settings
from builders.spec import EngineRecord, TaskPlan, TaskReport, TaskRequest, TaskResult
from state import JobTask

log = logging.getLogger(__name__)

TAIL_LINES = 20
_RUNNING = ("SCHEDULING", "RUNNING", "UPDATING")


class _Follower(threading.Thread):
    """Follows one Job's log: the task's latest progress, its result, and the last lines (for an error)."""

    def __init__(self, hub: Hub, job_id: str, namespace: str) -> None:
        super().__init__(name=f"quantbot-job-log-{job_id}", daemon=True)
        self.hub, self.job_id, self.namespace = hub, job_id, namespace
        self.progress: TaskReport | None = None
        self.result: TaskResult | None = None
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)

    def run(self) -> None:
        try:
            for line in self.hub.job_logs(self.job_id, self.namespace):
                self.read(line)
        except HubError as e:  # the Job's stage, not its log, decides; a broken stream only ends the log
            log.info("the log of Job %s ended: %s", self.job_id, e)

    def read(self, line: str) -> None:
        try:
            parsed = json.loads(line) if line.startswith("{") else None
            if isinstance(parsed, dict) and PROGRESS_KEY in parsed:
                self.progress = TaskReport.model_validate(parsed[PROGRESS_KEY])
                return
            if isinstance(parsed, dict) and RESULT_KEY in parsed:
                self.result = TaskResult.model_validate(parsed[RESULT_KEY])
                return
        except ValueError:  # not JSON, or not the task's: a line of the log like any other
            pass
        self.tail.append(line)


class JobsTransport(Transport):
    """Runs tasks as Jobs on the Hub, follows their stage and log, cancels them."""

    owner = "celery"  # the lease holder of the jobs out as Jobs (the name a restarted bot holds them by)

    def __init__(self, settings: Settings, hub: Hub, flavors: Flavors, bot_name: Callable[[], str]) -> None:
        self.settings = settings
        self.hub = hub
        self.flavors = flavors
        self._bot_name = bot_name  # asked once the Hub answers: the Jobs run in the bot's namespace
        self._followers: dict[str, _Follower] = {}
        self._checked = False

    @cached_property
    def namespace(self) -> str:
        return self.settings.jobs_namespace or self._bot_name()

    def check_flavors(self) -> list[str]:
        """Where the Hub's Jobs hardware differs from jobs_flavors.yaml (nothing when it is down)."""
        try:
            hardware = self.hub.jobs_hardware()
        except HubError as e:  # the Hub unreachable: the table stands as it is
            log.info("could not list the Hub's Jobs hardware (%s); using jobs_flavors.yaml as it is", e)
            return []
        warnings = self.flavors.compare(hardware)
        for warning in warnings:
            log.warning("%s", warning)
        return warnings

    def ready(self) -> bool:
        """Always (no broker: each Hub call answers for itself); the first time, the flavours are compared
        with the Hub's."""
        if not self._checked:
            self._checked = True
            self.check_flavors()
        return True

    def queue(self, plan: TaskPlan) -> str:
        if plan.flavor is None:
            raise TransportError(f"no Jobs flavour for {'sm' + str(plan.sm) if plan.sm else 'its SMs'}")
        return plan.flavor

    def send(self, request: TaskRequest, task_id: str) -> Sent:
        try:
            info = self.hub.run_job(
                image=self.settings.jobs_image,
                command=["quantbot", "task", request.kind],
                env={TASK_ENV: request.model_dump_json()},
                secrets={"HF_TOKEN": self.settings.token() or ""},
                flavor=request.queue,
                timeout=self.settings.jobs_timeout_s,
                namespace=self.namespace,
                labels={
                    "quantbot-job": str(request.job_id),
                    "quantbot-task": f"{request.kind}-{request.sm or 'all'}",
                },
            )
        except HubError as e:
            raise TransportError(f"could not run the {request.kind} Job: {e}", cause=cause_of(e)) from e
        return Sent(info.id, request.queue, info.url)

    def status(self, task: JobTask) -> Seen:
        info = self.hub.inspect_job(task.task_id, self.namespace)
        stage = info.status.stage if info else None
        if stage in _RUNNING:
            progress = self._follower(task).progress
            phase = Phase.WAITING if stage == "SCHEDULING" else Phase.RUNNING
            return Seen(phase, progress, worker=task.worker, where=f"Job {task.worker}, {task.queue}")
        if stage == "COMPLETED":
            follower = self._finished(task)
            if follower.result is None:
                return self._errored(task, info, follower, "the Job completed without printing its result")
            result = follower.result.model_copy(update={"worker": task.worker, "queue": task.queue})
            return self._spent(task, info, Seen(Phase.SUCCEEDED, result=result, worker=task.worker))
        if info is not None and stage == "ERROR" and "timeout" not in (info.status.message or "").lower():
            return self._errored(task, info, self._finished(task))
        if stage == "CANCELED":
            self._followers.pop(task.task_id, None)
            return self._spent(task, info, Seen(Phase.CANCELLED, error="the Job was cancelled"))
        # DELETED, timed out, or gone from the Hub: lost, sent again within max_attempts
        self._followers.pop(task.task_id, None)
        return self._spent(task, info, Seen(Phase.LOST, worker=task.worker))

    def cancel(self, task: JobTask) -> Seen:
        """Cancel the Job on the Hub (a Job already ended keeps its stage)."""
        try:
            self.hub.cancel_job(task.task_id, self.namespace)
        except HubError as e:
            log.warning("could not cancel Job %s (%s)", task.task_id, e)
        info = None
        try:
            info = self.hub.inspect_job(task.task_id, self.namespace)
        except HubError as e:
            log.info("could not read Job %s after cancelling it (%s)", task.task_id, e)
        self._followers.pop(task.task_id, None)
        return self._spent(task, info, Seen(Phase.CANCELLED))

    def _follower(self, task: JobTask) -> _Follower:
        follower = self._followers.get(task.task_id)
        if follower is None:
            follower = self._followers[task.task_id] = _Follower(self.hub, task.task_id, self.namespace)
            follower.start()
        return follower

    def _finished(self, task: JobTask) -> _Follower:
        follower = self._follower(task)
        follower.join(10.0)  # a finished Job's stream ends at once
        self._followers.pop(task.task_id, None)
        return follower

    def _errored(
        self, task: JobTask, info: JobInfo | None, follower: _Follower, why: str | None = None
    ) -> Seen:
        """A failed Job: its task fails with the log's tail; a failed engine Job is its SM's record."""
        message = why or (info.status.message if info else None) or "ERROR"
        tail = "\n".join(follower.tail)
        error = f"Job {task.worker} ended in ERROR ({message}); the end of its log:\n{tail}"
        if task.kind == "engine" and task.sm is not None:
            record = EngineRecord(sm=task.sm, status="failed", reason=error[-2000:])
            result = TaskResult(worker=task.worker, record=record, logs_url=task.worker)
            return self._spent(task, info, Seen(Phase.SUCCEEDED, result=result, worker=task.worker))
        # A build that failed on its own printed its result before the Job exited 1: its manifest says
        # whether the Hub caused it (it waits for another try) or not (it fails now); no result: unexpected.
        done = follower.result
        cause = (
            Cause.OTHER
            if done is None
            else Cause.HUB
            if done.hub_failed
            else cause_of_manifest(done.manifest)
        )
        return self._spent(task, info, Seen(Phase.FAILED, error=error[-4000:], cause=cause))

    def _spent(self, task: JobTask, info: JobInfo | None, seen: Seen) -> Seen:
        """The Job's runtime, and what it cost at its flavour's price, added to what is seen of it."""
        durations = info.durations if info else None
        running = float(durations.running_secs or 0) if durations else 0.0
        flavor = self.flavors.flavors.get(task.queue)
        cost = flavor.cost(running / 60) if flavor else 0.0
        return dataclasses.replace(seen, running_s=running, cost_usd=cost)
