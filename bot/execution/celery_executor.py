"""The Celery executor: jobs fan out to workers on other machines through a Redis broker, one queue per SM.

A job is one quantize task (queue `quantize`) plus one engine task per target SM (queue `sm90`, …).
The executor does, each round (`poll`), and at once when the store tells it of a new or cancelled job:

- send: claim the queued jobs and send their quantize tasks — only while the broker answers; otherwise the
  jobs stay queued in the store (webhooks are still taken) and are sent when it answers again;
- follow: read each unfinished task's state from the result backend and record it in the store: the
  worker and queue in `job_tasks`, the stage and progress on the job (the reply updater and the status
  page see them as for a local build), the job's lease renewed while its tasks are alive;
- fan out: when the quantize task has put the checkpoint in the release's draft PR, send an engine task
  per SM with the PR's pinned revision; fan in: once every SM has a record, or `engine_deadline_s` has
  passed (the missing SMs are listed as such, and added by a later commit when they finish), the job is
  built, and the publish step finalises the card and the PR (`bot.publishing.staged`);
- a worker that stops reporting (killed, its machine gone) for a lease: its task is fenced and revoked
  and sent again, to another worker of the same queue; the draft PR it may have opened is found again by
  key, so the job still ends with exactly one release;
- `/cancel`: every task of the job is fenced, revoked and terminated on its worker.

Stopping the bot stops only the following: the builds go on, and a restarted bot takes them up again from
the store (`job_tasks`) and the result backend. Workers never touch the bot's database.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from typing import Any

from celery import Celery
from celery.result import AsyncResult

from bot.execution.celery_app import (
    ENGINE_TASK,
    PROGRESS,
    QUANTIZE_QUEUE,
    QUANTIZE_TASK,
    broker_answers,
    fence,
    make_app,
    sm_queue,
)
from bot.execution.publish_step import PublishStep
from bot.execution.retries import Cause, Retries, cause_of, cause_of_manifest
from bot.publishing.staged import Draft, StagedPublisher, result_from_json
from bot.settings import Settings
from builders.spec import BuildSpec, Manifest
from state import BuildChange, GuardFailed, Job, JobStatus, JobTask, LeaseLost, Store, TaskState

log = logging.getLogger(__name__)

OWNER = "celery"  # the lease holder of every job out on the queues: a restarted bot holds them again
_ALIVE = ("STARTED", PROGRESS)


class CeleryExecutor:
    """Sends jobs to Celery workers, records what they report, and publishes what they built."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        publisher: StagedPublisher,
        *,
        app: Celery | None = None,
        poll_s: float = 0.5,
    ) -> None:
        self.settings = settings
        self.store = store
        self.publisher = publisher
        self.app = app or make_app(settings)
        self.lease_s = settings.lease_s
        self.poll_s = poll_s
        me = f"{socket.gethostname()}:{os.getpid()}"
        self.retries = Retries(settings, store)
        self.publish_step = PublishStep(
            store,
            publisher,
            owner=f"{me}:publish",
            lease_s=self.lease_s,
            retries=self.retries,
            release=self._release,
        )
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._cancelled: set[int] = set()
        self._beats: dict[str, tuple[Any, float]] = {}  # task id → (its last beat, when it last changed)
        self._renewed: dict[int, tuple[str, float]] = {}  # job id → (message, when) last recorded
        self._broker_down_since: float | None = None
        self._thread: threading.Thread | None = None
        self._unlisten: Any = None

    # ------------------------------------------------------------------------------------- the interface

    def start(self) -> CeleryExecutor:
        """Hold again the jobs a previous run sent (their builds went on), then follow and publish."""
        self._stopping.clear()
        self._unlisten = self.store.changes.listen(self._on_change)
        for job in self.store.jobs.list({JobStatus.RUNNING}, limit=10_000):
            if job.lease_owner == OWNER:
                with contextlib.suppress(GuardFailed):
                    self.store.jobs.heartbeat(job.id, OWNER, self.lease_s)
        self.store.lifecycle.requeue_expired(max_attempts=self.settings.max_attempts)
        self._thread = threading.Thread(target=self._loop, name="quantbot-celery", daemon=True)
        self._thread.start()
        self.publish_step.start()
        return self

    def stop(self, timeout: float = 15.0, *, drain: bool = True) -> None:
        """Stop following; the tasks go on on their workers (`drain` has nothing to wait for here), and the
        next start follows them again."""
        self._stopping.set()
        self._wake.set()
        self.publish_step.stop(timeout)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._unlisten is not None:
            self._unlisten()

    def poll(self) -> None:
        with self._lock:
            self._revoke_cancelled()
            if self._broker_ok():
                self._send_queued()
                self._follow()

    def busy(self) -> bool:
        return bool(self.store.tasks.unfinished())

    # ------------------------------------------------------------------------------------------- sending

    def _on_change(self, change: BuildChange) -> None:
        if not change.moved:
            return
        if change.status is JobStatus.CANCELLED and change.job_id is not None:
            with self._lock:
                self._cancelled.add(change.job_id)
        if change.status in (JobStatus.QUEUED, JobStatus.CANCELLED):
            self._wake.set()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.poll()
            except Exception:  # the store or the backend failed this round; the next round tries again
                log.exception("celery executor poll failed")
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def _broker_ok(self) -> bool:
        """Whether the broker answers; said once in the log when it stops and when it is back."""
        if broker_answers(self.app):
            if self._broker_down_since is not None:
                down = time.monotonic() - self._broker_down_since
                log.warning("the broker answers again after %.0fs; sending the queued jobs", down)
                self._broker_down_since = None
            return True
        if self._broker_down_since is None:
            self._broker_down_since = time.monotonic()
            log.warning("the broker does not answer; jobs stay queued in the store until it does")
        return False

    def _send_queued(self) -> None:
        while not self._stopping.is_set():
            job = self.store.lifecycle.claim_build(OWNER, self.lease_s)
            if job is None:
                return
            try:
                spec = BuildSpec.model_validate(job.spec)
                repo_id = self.publisher.repo_id_for_spec(spec)
            except Exception as e:  # a spec that does not validate, or the Hub cannot name the bot
                self.store.lifecycle.start_failed(job.id, OWNER, f"could not send the build: {e}")
                continue
            kwargs = {"spec": job.spec, "repo_id": repo_id, "beat_s": self._beat_s}
            if not self._send(job, QUANTIZE_TASK, QUANTIZE_QUEUE, kwargs):
                return

    def _send(self, job: Job, name: str, queue: str, kwargs: dict[str, Any], sm: int | None = None) -> bool:
        """Record, then send one task; a broker that refuses puts the job back in the store's queue."""
        kind = "quantize" if name == QUANTIZE_TASK else "engine"
        earlier = [t for t in self.store.tasks.of_job(job.id) if t.kind == kind and t.sm == sm]
        attempt = len(earlier) + 1
        task_id = f"qb-{job.id}-{job.build_key[:12]}-{queue if sm is not None else kind}-{attempt}"
        self.store.tasks.add(job.id, task_id, kind=kind, queue=queue, sm=sm, attempt=attempt)
        try:
            self.app.send_task(name, kwargs=kwargs, task_id=task_id, queue=queue)
        except Exception as e:  # kombu's OperationalError, redis' ConnectionError, OSError
            log.warning("job %d: the broker did not take task %s (%s)", job.id, task_id, type(e).__name__)
            self.store.tasks.update(task_id, state=TaskState.LOST, message="the broker did not take it")
            self.store.lifecycle.unsent(job.id, OWNER, "the broker did not answer; queued until it does")
            return False
        self._record(job, f"{'fetch' if kind == 'quantize' else 'engines'}: sent to queue {queue}")
        log.info("job %d: task %s sent to queue %s", job.id, task_id, queue)
        return True

    @property
    def _beat_s(self) -> float:
        return max(0.5, self.lease_s / 4)

    # ----------------------------------------------------------------------------------------- following

    def _follow(self) -> None:
        jobs: dict[int, Job] = {}
        for task in self.store.tasks.unfinished():
            job = jobs.get(task.job_id) or jobs.setdefault(task.job_id, self.store.jobs.get(task.job_id))
            if job.status is JobStatus.CANCELLED:
                self._revoke(job.id, [task])
                continue
            result = AsyncResult(task.task_id, app=self.app)
            state = result.state
            if state in _ALIVE:
                self._alive(job, task, result.info if isinstance(result.info, dict) else {})
            elif state == "SUCCESS":
                self._succeeded(job, task, result.result or {})
            elif state in ("FAILURE", "REVOKED"):
                cause = cause_of(result.info) if isinstance(result.info, BaseException) else Cause.OTHER
                self._failed(job, task, f"{state.lower()}: {result.info!r}"[:500], cause)
        for job in jobs.values():
            if job.status is JobStatus.RUNNING and job.lease_owner == OWNER:
                self._fan_in(self.store.jobs.get(job.id))
        self._renew_leases()

    def _alive(self, job: Job, task: JobTask, info: dict[str, Any]) -> None:
        """A task running on a worker: record who and where; a worker that stopped beating is lost."""
        worker = info.get("worker") or info.get("hostname")
        if task.state is not TaskState.STARTED or (worker and worker != task.worker):
            self.store.tasks.update(task.task_id, state=TaskState.STARTED, worker=worker)
        beat, now = info.get("beat"), time.monotonic()
        seen = self._beats.get(task.task_id)
        if seen is None or seen[0] != beat:
            self._beats[task.task_id] = (beat, now)
            if info.get("stage"):
                where = f"{info.get('worker')}, queue {info.get('queue')}"
                message = f"{info['stage']}: {info.get('message', '')} (on {where})"
                progress = float(info.get("progress") or 0.0) if task.kind == "quantize" else None
                self._record(job, message, progress)
            return
        if now - seen[1] > self.lease_s:
            self._lost(job, task, worker)

    def _lost(self, job: Job, task: JobTask, worker: str | None) -> None:
        """No report for a lease: the worker is gone. Fence the task and send it again, or give up."""
        log.warning("job %d: task %s on %s stopped reporting; sending it again", job.id, task.task_id, worker)
        self._revoke(job.id, [task], TaskState.LOST, f"{worker or 'its worker'} stopped reporting")
        tasks = self.store.tasks.of_job(job.id)
        lost = sum(1 for t in tasks if (t.kind, t.sm, t.state) == (task.kind, task.sm, TaskState.LOST))
        if lost >= self.settings.max_attempts:  # tries the Hub's failures cost do not count
            self._fail(job, f"{task.kind} task lost with its worker {lost} times")
            return
        if task.kind == "quantize":
            repo_id = self.publisher.repo_id_for_spec(BuildSpec.model_validate(job.spec))
            kwargs = {"spec": job.spec, "repo_id": repo_id, "beat_s": self._beat_s}
            self._send(job, QUANTIZE_TASK, QUANTIZE_QUEUE, kwargs)
        elif task.sm is not None:
            self._send_engine(job, task.sm)

    def _succeeded(self, job: Job, task: JobTask, payload: dict[str, Any]) -> None:
        if payload.get("skipped"):  # a fenced task that reached a worker: nothing ran
            self.store.tasks.update(task.task_id, state=TaskState.REVOKED, message=payload["skipped"])
            return
        if task.kind == "engine" and job.status is not JobStatus.RUNNING:
            if job.status in (JobStatus.BUILT, JobStatus.PUBLISHING):
                return  # finalising now: added by a later commit once that is done
            self._late_engine(job, task, payload)
            return
        message = _summary(payload)
        self.store.tasks.update(
            task.task_id, state=TaskState.SUCCEEDED, worker=payload.get("worker"), result=payload,
            message=str(message)[:1000],
        )  # fmt: skip
        if task.kind != "quantize" or job.status is not JobStatus.RUNNING:
            return
        if not payload.get("ok"):
            error = f"{payload.get('error')} (on {payload.get('worker')})"
            manifest = payload.get("manifest")
            cause = Cause.HUB if payload.get("hub_failed") else cause_of_manifest(manifest)
            self._fail(job, error, manifest, cause)
            return
        if payload.get("draft"):
            for sm in job.spec.get("target_sms") or []:
                self._send_engine(job, sm, payload)

    def _send_engine(self, job: Job, sm: int, quantized: dict[str, Any] | None = None) -> None:
        quantized = quantized or self._quantized(job) or {}
        files = [a["path"] for a in (quantized.get("manifest") or {}).get("artifacts", [])]
        kwargs = {
            "spec": job.spec, "sm": sm, "draft": quantized["draft"], "files": files, "beat_s": self._beat_s,
        }  # fmt: skip
        self._send(job, ENGINE_TASK, sm_queue(sm), kwargs, sm=sm)

    def _failed(self, job: Job, task: JobTask, error: str, cause: Cause = Cause.OTHER) -> None:
        """A task that raised (the Hub, a bug, a worker error): recorded; a quantize task's job waits for
        another try or fails (`bot.execution.retries`)."""
        self.store.tasks.update(task.task_id, state=TaskState.FAILED, message=error)
        if task.kind == "quantize":
            self._fail(job, f"the quantize task failed: {error}", None, cause)

    def _fail(
        self, job: Job, error: str, manifest: dict[str, Any] | None = None, cause: Cause = Cause.PERMANENT
    ) -> None:
        with contextlib.suppress(GuardFailed):
            self.retries.build_failed(job, OWNER, error, manifest, cause)

    # ----------------------------------------------------------------------------------- fan-in, release

    def _quantized(self, job: Job) -> dict[str, Any] | None:
        """What the job's quantize task returned (its manifest, the draft PR or the final release)."""
        done = [
            t for t in self.store.tasks.of_job(job.id)
            if t.kind == "quantize" and t.state is TaskState.SUCCEEDED and t.result and t.result.get("ok")
        ]  # fmt: skip
        return done[-1].result if done else None

    def _engines(self, job: Job) -> dict[int, dict[str, Any]]:
        """The latest engine result per SM, among the tasks that finished."""
        found: dict[int, dict[str, Any]] = {}
        for task in self.store.tasks.of_job(job.id):
            if task.kind == "engine" and task.sm is not None and task.state is TaskState.SUCCEEDED:
                found[task.sm] = task.result or {}
        return found

    def _fan_in(self, job: Job) -> None:
        """Built once every SM has a record, or once the deadline passed (the missing ones listed)."""
        quantized = self._quantized(job)
        if quantized is None:
            return
        sms = list(job.spec.get("target_sms") or [])
        engines = self._engines(job)
        waited = time.time() - _finished_at(self.store.tasks.of_job(job.id))
        if quantized.get("draft") and set(sms) - set(engines) and waited < self.settings.engine_deadline_s:
            return
        manifest = _merged(quantized["manifest"], sms, engines, self.settings.engine_deadline_s)
        with contextlib.suppress(GuardFailed):
            self.store.lifecycle.built(job.id, OWNER, manifest)

    def _release(self, job: Job, approval: str | None) -> Any:
        """The publish step's release of a fanned-out job: the card and the PR finalised by the bot."""
        quantized = self._quantized(job)
        if quantized is None:
            raise RuntimeError(f"job {job.id} is built but its quantize task recorded no result")
        if quantized.get("final"):
            return result_from_json(quantized["final"])
        manifest = Manifest.model_validate(job.manifest)
        return self.publisher.finalise(manifest, Draft.from_json(quantized["draft"]), approval)  # type: ignore[arg-type]

    def _late_engine(self, job: Job, task: JobTask, payload: dict[str, Any]) -> None:
        """An engine that finished after the release: recorded, and added to it by a commit."""
        self.store.tasks.update(task.task_id, state=TaskState.SUCCEEDED, worker=payload.get("worker"),
                                result=payload)  # fmt: skip
        quantized = self._quantized(job)
        if job.status is not JobStatus.PUBLISHED or not quantized or not quantized.get("draft"):
            return
        sms = list(job.spec.get("target_sms") or [])
        merged = _merged(quantized["manifest"], sms, self._engines(job), self.settings.engine_deadline_s)
        manifest = Manifest.model_validate(merged)
        try:
            where = self.publisher.amend(manifest, Draft.from_json(quantized["draft"]))
        except Exception:
            log.exception("job %d: could not add the late engine for sm%s", job.id, task.sm)
            return
        if where is None:
            log.info("job %d: the release's PR was declined; sm%s's engine record not added", job.id, task.sm)
            return
        self.store.lifecycle.late_engines(job.id, manifest.model_dump(mode="json"))  # as committed
        log.info("job %d: late engine record for sm%s added to %s", job.id, task.sm, where)

    # ----------------------------------------------------------------------------------- cancel, leases

    def _revoke_cancelled(self) -> None:
        cancelled, self._cancelled = self._cancelled, set()
        for job_id in cancelled:
            tasks = [t for t in self.store.tasks.of_job(job_id) if not t.finished]
            self._revoke(job_id, tasks)
            quantized = self._quantized(self.store.jobs.get(job_id))
            if quantized and quantized.get("draft"):
                draft = Draft.from_json(quantized["draft"])
                with contextlib.suppress(Exception):
                    self.publisher.hub.set_status(
                        draft.repo_id, draft.pr_number, "closed", comment="The build was cancelled."
                    )

    def _revoke(
        self, job_id: int, tasks: list[JobTask], state: TaskState = TaskState.REVOKED, why: str = "cancelled"
    ) -> None:
        """Fence, revoke and terminate tasks; recorded in the store even when the broker is down."""
        ids = [t.task_id for t in tasks]
        if not ids:
            return
        try:
            fence(self.app, ids)
            self.app.control.revoke(ids, terminate=True, signal="SIGTERM")
        except Exception as e:
            log.warning("job %d: could not reach the broker to revoke %s (%s)", job_id, ids, type(e).__name__)
        for task_id in ids:
            self.store.tasks.update(task_id, state=state, message=why)
            self._beats.pop(task_id, None)
        log.info("job %d: tasks %s %s", job_id, ids, state.value)

    def _record(self, job: Job, message: str, progress: float | None = None) -> None:
        """Progress on the job (the reply updater and the status page read it); renews its lease."""
        with contextlib.suppress(LeaseLost, GuardFailed, ValueError):
            self.store.jobs.heartbeat(job.id, OWNER, self.lease_s, progress=progress, message=message[:500])
            self._renewed[job.id] = (message, time.monotonic())

    def _renew_leases(self) -> None:
        now = time.monotonic()
        for job in self.store.jobs.list({JobStatus.RUNNING}, limit=10_000):
            last = self._renewed.get(job.id)
            if job.lease_owner == OWNER and (last is None or now - last[1] >= self.lease_s / 4):
                self._record(job, job.progress_message or "queued on the broker")


def _summary(payload: dict[str, Any]) -> str:
    """One line for a finished task: the engine's record, where the checkpoint went, or why it failed."""
    record = payload.get("record")
    if record:
        why = f" ({record['reason']})" if record.get("reason") else ""
        return f"sm{record['sm']}: {str(record['status']).replace('_', ' ')}{why}"
    if payload.get("error"):
        return str(payload["error"])
    if payload.get("draft"):
        return f"checkpoint uploaded to {payload['draft']['url']}"
    return f"already released: {(payload.get('final') or {}).get('message', '')}"


def _finished_at(tasks: list[JobTask]) -> float:
    """When the quantize task finished (epoch seconds), from which the engine deadline runs."""
    done = [t.finished_at for t in tasks if t.kind == "quantize" and t.finished_at is not None]
    return max(done).timestamp() if done else time.time()


def _merged(
    manifest: dict[str, Any], sms: list[int], engines: dict[int, dict[str, Any]], deadline_s: float
) -> dict[str, Any]:
    """The quantize manifest completed with every SM's engine record, the engines' artifacts and the SMs'
    serving checks."""
    records, artifacts = [], list(manifest.get("artifacts") or [])
    for sm in sms:
        found = engines.get(sm)
        if found is None:
            reason = f"no engine record within engine_deadline_s ({deadline_s:.0f} s); added when it finishes"
            records.append({"sm": sm, "status": "not_built", "reason": reason})
            continue
        records.append(found["record"])
        artifacts += found.get("artifacts") or []
    spec = dict(manifest["spec"]) | {"target_sms": sms}
    serving = [record for sm in sms for record in (engines.get(sm) or {}).get("serving") or []]
    return manifest | {"spec": spec, "engines": records, "artifacts": artifacts, "serving": serving}
