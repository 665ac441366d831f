"""The Hugging Face Jobs executor: each quantize or engine task runs as a Job on the flavour of its SM.

The fan-out and fan-in are the Celery executor's (`CeleryExecutor`: quantize once, an engine per SM, the bot
finalising the draft PR); only the transport differs. A task is sent with `run_job`: the worker image
(`jobs_image`), the command `quantbot task quantize|engine` with its arguments in `QUANTBOT_TASK`, the Hub
token as the Job secret `HF_TOKEN` (never in the command, the environment or a log), the flavour the planner
chose for the SM (the quantize Job on the cheapest of the job's flavours) and `jobs_timeout_s`. The task's
row in `job_tasks` is the Job: its id, its flavour (`queue`) and its URL (`worker`).

Each round: `inspect_job` gives the stage; a thread per running Job follows its log (`fetch_job_logs`),
where the task prints its progress and, at the end, its result as JSON lines. `COMPLETED` → the result is
recorded as the Celery result would be; `ERROR` → the task fails with the tail of the Job's log (an engine
Job's failure is that SM's record); a timeout (`ERROR`, "timeout") or a Job the Hub lost (`DELETED`, gone) is
sent again within `max_attempts`. `/cancel` cancels every Job of the job. A Job's runtime and its cost at
the flavour's price are recorded when it ends, and a build whose estimate would pass
`jobs_monthly_budget_usd` is refused before its first Job.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections import deque
from datetime import UTC, datetime
from typing import Any

from huggingface_hub import HfApi, JobInfo
from huggingface_hub.errors import HfHubHTTPError

from bot.eligibility.flavors import Flavor, load_flavors
from bot.eligibility.planner import Plan
from bot.eligibility.specs import SpecMaker, job_costs
from bot.execution.celery_app import QUANTIZE_TASK
from bot.execution.celery_executor import OWNER, CeleryExecutor
from bot.execution.one_task import PROGRESS_KEY, RESULT_KEY, TASK_ENV
from bot.execution.retries import Cause, cause_of
from bot.publishing.staged import StagedPublisher
from bot.settings import Settings
from builders.spec import BuildSpec
from handlers import budget
from state import Job, JobStatus, JobTask, Store, TaskState

log = logging.getLogger(__name__)

TAIL_LINES = 20
_LOST = "lost"


class _Follower(threading.Thread):
    """Follows one Job's log: the task's latest progress, its result, and the last lines (for an error)."""

    def __init__(self, api: HfApi, job_id: str, namespace: str) -> None:
        super().__init__(name=f"quantbot-job-log-{job_id}", daemon=True)
        self.api, self.job_id, self.namespace = api, job_id, namespace
        self.progress: dict[str, Any] | None = None
        self.result: dict[str, Any] | None = None
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)

    def run(self) -> None:
        with contextlib.suppress(Exception):  # the Job's stage, not its log, decides; a broken stream ends it
            for line in self.api.fetch_job_logs(job_id=self.job_id, namespace=self.namespace, follow=True):
                self.read(line)

    def read(self, line: str) -> None:
        try:
            parsed = json.loads(line) if line.startswith("{") else None
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and PROGRESS_KEY in parsed:
            self.progress = parsed[PROGRESS_KEY]
        elif isinstance(parsed, dict) and RESULT_KEY in parsed:
            self.result = parsed[RESULT_KEY]
        else:
            self.tail.append(line)


class HfJobsExecutor(CeleryExecutor):
    """Sends each task of a job to Hugging Face Jobs, follows the Jobs, and publishes what they built."""

    def __init__(
        self, settings: Settings, store: Store, publisher: StagedPublisher, *, poll_s: float = 1.0
    ) -> None:
        super().__init__(settings, store, publisher, poll_s=poll_s)
        self.api = HfApi(endpoint=settings.hf_endpoint, token=settings.token())
        self.flavors = load_flavors()
        self._plans: dict[int, Plan] = {}
        self._followers: dict[str, _Follower] = {}

    @property
    def namespace(self) -> str:
        return self.settings.jobs_namespace or self.publisher.bot_name

    def check_flavors(self) -> list[str]:
        """Where the Hub's `list_jobs_hardware` differs from jobs_flavors.yaml (nothing when it is down)."""
        try:
            hardware = self.api.list_jobs_hardware()
        except Exception as e:  # the Hub unreachable: the table stands as it is
            log.info("could not list the Hub's Jobs hardware (%s); using jobs_flavors.yaml as it is", e)
            return []
        warnings = self.flavors.compare(hardware)
        for warning in warnings:
            log.warning("%s", warning)
        return warnings

    def start(self) -> HfJobsExecutor:
        self.check_flavors()
        super().start()
        return self

    # ------------------------------------------------------------------------------------------- sending

    def _broker_ok(self) -> bool:
        return True  # no broker: each Hub call answers for itself

    def _plan(self, job: Job) -> Plan:
        if job.id not in self._plans:
            spec = BuildSpec.model_validate(job.spec)
            if spec.repo_id is None or spec.revision is None:  # the bot queues Hub revisions only
                raise ValueError(f"job {job.id} has no Hub revision to plan")
            self._plans[job.id] = SpecMaker(self.settings, self.publisher.hub).plan(
                spec.repo_id, spec.revision
            )
        return self._plans[job.id]

    def _flavor(self, job: Job, sm: int | None) -> Flavor | None:
        """The SM's flavour from the job's plan; for the quantize Job, the cheapest of its SMs' flavours."""
        sms = list(job.spec.get("target_sms") or []) if sm is None else [sm]
        chosen = [t.flavor for t in self._plan(job).targets if t.target.sm in sms and t.flavor is not None]
        return min(chosen, key=lambda f: f.usd_per_hour) if chosen else None

    def _send(self, job: Job, name: str, queue: str, kwargs: dict[str, Any], sm: int | None = None) -> bool:
        kind = "quantize" if name == QUANTIZE_TASK else "engine"
        earlier = [t for t in self.store.tasks.of_job(job.id) if t.kind == kind and t.sm == sm]
        try:
            flavor = self._flavor(job, sm)
            if flavor is None:
                raise ValueError(f"no Jobs flavour for {'sm' + str(sm) if sm else 'its SMs'}")
            if kind == "quantize" and not earlier and (refused := self._over_budget(job)):
                self.store.lifecycle.start_failed(job.id, OWNER, refused)
                return True
            info = self.api.run_job(
                image=self.settings.jobs_image, command=["quantbot", "task", kind],
                env={TASK_ENV: json.dumps(kwargs | {"queue": flavor.name})},
                secrets={"HF_TOKEN": self.settings.token() or ""}, flavor=flavor.name,
                timeout=self.settings.jobs_timeout_s, namespace=self.namespace,
                labels={"quantbot-job": str(job.id), "quantbot-task": f"{kind}-{sm or 'all'}"},
            )  # fmt: skip
        except (HfHubHTTPError, OSError, ValueError) as e:
            log.warning("job %d: the Hub did not run the %s Job (%s)", job.id, kind, e)
            if kind == "quantize":  # the Hub's failure: the job waits for another try (bot.execution.retries)
                cause = Cause.PERMANENT if isinstance(e, ValueError) else cause_of(e)
                self._fail(job, f"could not run the {kind} Job: {e}", None, cause)
            return True
        self.store.tasks.add(job.id, info.id, kind=kind, queue=flavor.name, sm=sm, attempt=len(earlier) + 1)
        self.store.tasks.update(info.id, worker=info.url)
        what = "quantize" if kind == "quantize" else f"engine sm{sm}"
        self._record(
            job, f"{'fetch' if kind == 'quantize' else 'engines'}: {what} Job {info.url} on {flavor.name}"
        )
        log.info("job %d: %s Job %s on %s", job.id, what, info.url, flavor.name)
        return True

    def _over_budget(self, job: Job) -> str | None:
        limit = self.settings.jobs_monthly_budget_usd
        if limit is None:
            return None
        costs = job_costs(self._plan(job))
        estimate = costs.estimate(str(job.spec["format"]), job.spec.get("target_sms") or []) if costs else 0.0
        now = datetime.now(UTC)
        return budget.refusal(limit, self.store.tasks.spent_since(budget.month_start(now)), estimate, now)

    # ----------------------------------------------------------------------------------------- following

    def _follow(self) -> None:
        jobs: dict[int, Job] = {}
        for task in self.store.tasks.unfinished():
            job = jobs.get(task.job_id) or jobs.setdefault(task.job_id, self.store.jobs.get(task.job_id))
            if job.status is JobStatus.CANCELLED:
                self._revoke(job.id, [task])
                continue
            info = self._inspect(task)
            stage = info.status.stage if info else _LOST
            if stage in ("SCHEDULING", "RUNNING", "UPDATING"):
                self._running(job, task, stage)
            elif stage == "COMPLETED":
                self._completed(job, task, info)
            elif stage == "ERROR" and "timeout" not in (info.status.message or "").lower():  # type: ignore[union-attr]
                self._errored(job, task, info)
            elif stage == "CANCELED":
                self._ended(task, info, TaskState.REVOKED, "the Job was cancelled")
            else:  # DELETED, timed out, or gone from the Hub: lost, sent again within max_attempts
                self._spend(task, info)
                self._lost(job, task, task.worker)
        for job in jobs.values():
            if job.status is JobStatus.RUNNING and job.lease_owner == OWNER:
                self._fan_in(self.store.jobs.get(job.id))
        self._renew_leases()

    def _inspect(self, task: JobTask) -> JobInfo | None:
        try:
            return self.api.inspect_job(job_id=task.task_id, namespace=self.namespace)
        except HfHubHTTPError as e:
            if e.response is not None and e.response.status_code == 404:
                return None
            raise

    def _follower(self, task: JobTask) -> _Follower:
        follower = self._followers.get(task.task_id)
        if follower is None:
            follower = self._followers[task.task_id] = _Follower(self.api, task.task_id, self.namespace)
            follower.start()
        return follower

    def _running(self, job: Job, task: JobTask, stage: str) -> None:
        if task.state is not TaskState.STARTED and stage != "SCHEDULING":
            self.store.tasks.update(task.task_id, state=TaskState.STARTED)
        progress = self._follower(task).progress
        if progress and progress.get("stage"):
            message = f"{progress['stage']}: {progress.get('message', '')} (Job {task.worker}, {task.queue})"
            self._record(
                job, message, float(progress.get("progress") or 0.0) if task.kind == "quantize" else None
            )

    def _finished_follower(self, task: JobTask) -> _Follower:
        follower = self._follower(task)
        follower.join(10.0)  # a finished Job's stream ends at once
        return follower

    def _completed(self, job: Job, task: JobTask, info: JobInfo | None) -> None:
        follower = self._finished_follower(task)
        self._spend(task, info)
        if follower.result is None:
            self._errored(job, task, info, "the Job completed without printing its result")
            return
        self._succeeded(job, task, follower.result | {"worker": task.worker, "queue": task.queue})
        self._followers.pop(task.task_id, None)

    def _errored(self, job: Job, task: JobTask, info: JobInfo | None, why: str | None = None) -> None:
        """A failed Job: its task fails with the log's tail; a failed engine Job is its SM's record."""
        follower = self._finished_follower(task)
        self._spend(task, info)
        message = why or (info.status.message if info else None) or "ERROR"
        tail = "\n".join(follower.tail)
        error = f"Job {task.worker} ended in ERROR ({message}); the end of its log:\n{tail}"
        self._followers.pop(task.task_id, None)
        if task.kind == "engine" and task.sm is not None:
            record = {"sm": task.sm, "status": "failed", "reason": error[-2000:]}
            self._succeeded(job, task, {"record": record, "artifacts": [], "worker": task.worker})
            return
        self._failed(job, task, error[-4000:])

    def _ended(self, task: JobTask, info: JobInfo | None, state: TaskState, why: str) -> None:
        self._spend(task, info)
        self.store.tasks.update(task.task_id, state=state, message=why)
        self._followers.pop(task.task_id, None)

    def _spend(self, task: JobTask, info: JobInfo | None) -> None:
        """Record the Job's runtime and what it cost at its flavour's price."""
        durations = info.durations if info else None
        running = float(durations.running_secs or 0) if durations else 0.0
        flavor = self.flavors.flavors.get(task.queue)
        cost = flavor.cost(running / 60) if flavor else 0.0
        self.store.tasks.update(task.task_id, running_s=running, cost_usd=cost)

    # ----------------------------------------------------------------------------------- cancel, leases

    def _revoke(
        self, job_id: int, tasks: list[JobTask], state: TaskState = TaskState.REVOKED, why: str = "cancelled"
    ) -> None:
        """Cancel the Jobs on the Hub (a Job already ended keeps its stage); recorded in the store."""
        for task in tasks:
            try:
                self.api.cancel_job(job_id=task.task_id, namespace=self.namespace)
            except HfHubHTTPError as e:
                log.warning("job %d: could not cancel Job %s (%s)", job_id, task.task_id, e)
            info = None
            with contextlib.suppress(HfHubHTTPError):
                info = self._inspect(task)
            self._ended(task, info, state, why)
        if tasks:
            log.info("job %d: Jobs %s %s", job_id, [t.task_id for t in tasks], state.value)
