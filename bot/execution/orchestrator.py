"""The orchestrator: a job's tasks sent, followed and finished, whatever carries them (`transport`).

A job is one quantize task plus one task per target SM, as its stored plan says (`builders.spec.TaskGraph`,
planned when the job was queued: nothing is planned again here). On this machine (`local`) the quantize
task is the whole build, this machine's engines included, and its output is published as it is; sent
elsewhere (`celery_transport`, `jobs_transport`) it stages the checkpoint in a draft PR and the SMs' tasks
fan out from it. The orchestrator does, each round (`poll`), and at once when the store tells it of a new
or cancelled job:

- send: claim the queued jobs and send their quantize tasks, while the transport is ready and has room (a
  broker that does not answer: the jobs stay queued in the store, webhooks are still taken, and they are
  sent when it answers again; every local slot busy: they wait for one); a job planned with prices is
  first held against `jobs_monthly_budget_usd`;
- follow: ask the transport what became of each unfinished task and record it in the store: the worker and
  queue in `job_tasks`, the stage and progress on the job (the reply updater and the status page see them
  as for a local build), the job's lease renewed while its tasks are alive;
- fan out: when the quantize task has put the checkpoint in the release's draft PR, send the task of each
  SM with the PR's pinned revision; fan in: once every SM has a record, or `engine_deadline_s` has passed
  (the missing SMs are listed as such, and added by a later commit when they finish), the job is built, and
  the publish step finalises the card and the PR (`bot.publishing.staged`);
- a task whose worker stops reporting for a lease (killed, its machine gone), or that its transport lost:
  fenced and sent again, within `max_attempts`; the draft PR it may have opened is found again by key, so
  the job still ends with exactly one release;
- `/cancel`: every task of the job is cancelled where it runs, and its draft PR closed.

Every move of a job goes through `state.lifecycle`. Stopping the bot stops the following, and the tasks
that end with the bot (`Transport.stop`: local builds finish the stage in hand, then their jobs go back to
the queue); remote tasks go on, and a restarted bot takes them up again from the store (`job_tasks`) and
the transport. A restarted bot also takes over the jobs a dead run of it left whose tasks still run
(`Transport.take_over`: a local builder, by its pid file).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from bot.errors import HubError
from bot.execution.rounds import Rounds
from bot.execution.transport import Phase, Seen, Transport, TransportError
from bot.publishing.publish_step import PublishStep
from bot.publishing.publisher import Approval, PublishResult
from bot.publishing.staged import from_record
from bot.retries import Cause, Retries, cause_of_manifest
from bot.scheduler import Scheduler
from bot.settings import Settings
from builders.spec import (
    BuildSpec,
    EngineRecord,
    Manifest,
    StagedCheckpoint,
    TaskGraph,
    TaskPlan,
    TaskRequest,
    TaskResult,
)
from handlers import budget
from state import GuardFailed, Job, JobStatus, JobTask, Store, TaskState

log = logging.getLogger(__name__)

T = TypeVar("T")
SHUTDOWN = "bot shutting down"  # why a build stopped with the bot went back to the queue


class ReleasePublisher(Protocol):
    """The publisher as the orchestrator uses it (`bot.publishing.staged.StagedPublisher`): a build on this
    machine published from its output, a fanned-out release staged, finalised, amended or withdrawn."""

    def repo_id_for_spec(self, spec: BuildSpec) -> str: ...

    def publish(self, build_dir: Path, *, approval: Approval | None = None) -> PublishResult: ...

    def finalise(
        self, manifest: Manifest, draft: StagedCheckpoint, approval: Approval | None = None
    ) -> PublishResult: ...

    def amend(self, manifest: Manifest, draft: StagedCheckpoint) -> str | None: ...

    def withdraw(self, draft: StagedCheckpoint, why: str) -> None: ...


class Orchestrator:
    """Sends jobs' tasks through one transport, records what becomes of them, and publishes the result."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        publisher: ReleasePublisher,
        transport: Transport,
        *,
        poll_s: float = 0.5,
        scheduler: Scheduler | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.publisher = publisher
        self.transport = transport
        self.owner = transport.owner
        self.lease_s = settings.lease_s
        self.poll_s = poll_s
        me = f"{socket.gethostname()}:{os.getpid()}"
        self.retries = Retries(settings, store)
        self.publish_step = PublishStep(
            store,
            None,
            owner=f"{me}:publish",
            lease_s=self.lease_s,
            retries=self.retries,
            release=self._release,
        )
        self._lock = threading.RLock()
        self._rounds = Rounds("orchestrator", self.poll, poll_s, busy=transport.busy, scheduler=scheduler)
        self._beats: dict[str, tuple[str, float]] = {}  # task id → (its last beat, when it last changed)
        self._reported: dict[str, str] = {}  # task id → the progress message last recorded
        self._renewed: dict[int, tuple[str, float]] = {}  # job id → (message, when) last recorded

    # ------------------------------------------------------------------------------------- the interface

    def start(self) -> Orchestrator:
        """Hold again the jobs a previous run sent (their tasks went on), then follow and publish."""
        self._rounds.listen(self.store.changes)
        with self._lock:
            for job in self.store.jobs.list({JobStatus.RUNNING}, limit=10_000):
                if job.lease_owner == self.owner:
                    self._heartbeat(job, job.progress_message or "followed again after a restart")
                elif job.lease_owner is not None:
                    self._take_over(job, job.lease_owner)
        self.store.lifecycle.requeue_expired(max_attempts=self.settings.max_attempts)
        self._rounds.start()
        self.publish_step.start()
        return self

    def stop(self, timeout: float | None = None, *, drain: bool = True) -> None:
        """Stop following, and the tasks that end with the bot: with `drain`, each may first finish the
        stage it is in (`shutdown_grace_s`), then its job goes back to the queue. Remote tasks go on, and
        the next start follows them again."""
        self._rounds.stopping.set()
        with self._lock:
            ending_s = self.transport.stop(self.settings.shutdown_grace_s if drain else 0.0)
        timeout = max(15.0, ending_s) if timeout is None else timeout
        self._rounds.stop(timeout)
        self.publish_step.stop(timeout)

    def poll(self) -> None:
        with self._lock:
            self._cancel_cancelled()
            if self.transport.ready():
                self._send_queued()
                self._follow()

    def busy(self) -> bool:
        return self.transport.busy() or bool(self.store.tasks.unfinished())

    # ------------------------------------------------------------------------------------------- sending

    def _send_queued(self) -> None:
        while not self._rounds.stopping.is_set() and self.transport.has_room():
            job = self.store.lifecycle.claim_build(self.owner, self.lease_s)
            if job is None:
                return
            try:
                spec = BuildSpec.model_validate(job.spec)
                repo_id = self.publisher.repo_id_for_spec(spec)
            except Exception as e:  # a spec that does not validate, or the Hub cannot name the bot
                self._move(
                    self.store.lifecycle.fail_start, job.id, self.owner, f"could not send the build: {e}"
                )
                continue
            if refused := self._over_budget(job):
                self._move(self.store.lifecycle.fail_start, job.id, self.owner, refused)
                continue
            if not self._send(job, _graph(job).quantize, repo_id=repo_id):
                return

    def _send(
        self,
        job: Job,
        plan: TaskPlan,
        *,
        repo_id: str | None = None,
        draft: StagedCheckpoint | None = None,
        files: list[str] | None = None,
    ) -> bool:
        """Send one task and record it; False when the transport is down (the job goes back to the queue)."""
        earlier = [t for t in self.store.tasks.of_job(job.id) if t.kind == plan.kind and t.sm == plan.sm]
        attempt = len(earlier) + 1
        try:
            request = TaskRequest(
                job_id=job.id,
                kind=plan.kind,
                sm=plan.sm,
                queue=self.transport.queue(plan),
                spec=BuildSpec.model_validate(job.spec),
                repo_id=repo_id,
                draft=draft,
                files=files or [],
                beat_s=max(0.5, self.lease_s / 4),
                attempt=attempt,
            )
            task_id = f"qb-{job.id}-{job.build_key[:12]}-{request.task_name}-{attempt}"
            sent = self.transport.send(request, task_id)
        except TransportError as e:
            log.warning("job %d: the %s task was not sent: %s", job.id, plan.kind, e)
            if e.transient:
                self._move(
                    self.store.lifecycle.requeue_unsent, job.id, self.owner, f"{e}; queued until it answers"
                )
                return False
            if plan.kind == "quantize":  # the Hub's failure waits for another try (bot.retries)
                self._fail(job, str(e), None, e.cause)
            return True
        self.store.tasks.add(
            job.id, sent.task_id, kind=plan.kind, queue=sent.queue, sm=plan.sm, attempt=attempt
        )
        if sent.worker:
            self.store.tasks.update(sent.task_id, worker=sent.worker)
        what = "quantize" if plan.sm is None else f"sm{plan.sm}"
        stage = "fetch" if plan.sm is None else "engines"
        self._heartbeat(
            job, f"{stage}: {what} task sent to {sent.queue}" + (f" ({sent.worker})" if sent.worker else "")
        )
        log.info("job %d: %s task %s sent to %s", job.id, what, sent.task_id, sent.queue)
        return True

    def _take_over(self, job: Job, dead: str) -> None:
        """A job a dead run of the bot left running: held by this run where the transport takes up each of
        its tasks (a builder still running); else its lease lapses and it is sent again."""
        spec = BuildSpec.model_validate(job.spec)
        tasks = [t for t in self.store.tasks.of_job(job.id) if not t.finished]
        taken = [self.transport.take_over(dead, task, spec) for task in tasks]
        if not taken or None in taken:
            return
        what = ", ".join(t for t in taken if t is not None)
        self._move(self.store.lifecycle.adopt, job.id, dead, self.owner, self.lease_s, what)
        log.warning("job %d: taken over from %s (%s)", job.id, dead, what)

    def _over_budget(self, job: Job) -> str | None:
        """Why a job planned with prices would pass the monthly Jobs budget, before its first task."""
        limit, graph = self.settings.jobs_monthly_budget_usd, _graph(job)
        if limit is None or graph.quantize.usd is None or self.store.tasks.of_job(job.id):
            return None
        now = datetime.now(UTC)
        return budget.refusal(limit, self.store.tasks.spent_since(budget.month_start(now)), graph.usd, now)

    # ----------------------------------------------------------------------------------------- following

    def _follow(self) -> None:
        jobs: dict[int, Job] = {}
        for task in self.store.tasks.unfinished():
            job = jobs.get(task.job_id) or jobs.setdefault(task.job_id, self.store.jobs.get(task.job_id))
            if job.status is JobStatus.RUNNING and job.lease_owner != self.owner:
                continue  # another run's (a live bot's local build, or a dead one's not taken over)
            if job.status is JobStatus.CANCELLED:
                self._cancel(job.id, task)
                continue
            seen = self.transport.status(task)
            if seen.phase in (Phase.WAITING, Phase.RUNNING):
                self._alive(job, task, seen)
            elif seen.phase is Phase.SUCCEEDED and seen.result is not None:
                self._report(job, task, seen)  # its last words before it ended (a local build's stage)
                self._spent(task, seen)
                self._succeeded(job, task, seen.result)
            elif seen.phase is Phase.FAILED:
                self._spent(task, seen)
                self._failed(job, task, seen.error, seen.cause)
            elif seen.phase is Phase.CANCELLED:
                self._ended(task, seen, TaskState.REVOKED, seen.error or "cancelled")
            elif seen.phase is Phase.STOPPED:
                self._ended(task, seen, TaskState.REVOKED, SHUTDOWN)
                self._move(self.store.lifecycle.give_back, job.id, self.owner, SHUTDOWN)
            elif seen.phase is Phase.LOST:
                self._spent(task, seen)
                self._lost(job, task, seen.worker or task.worker)
        for job in jobs.values():
            if job.status is JobStatus.RUNNING and job.lease_owner == self.owner:
                self._fan_in(self.store.jobs.get(job.id))
        self._renew_leases()

    def _alive(self, job: Job, task: JobTask, seen: Seen) -> None:
        """A task waiting or running: record who and where; one whose beat stopped changing is lost."""
        started = seen.phase is Phase.RUNNING
        if started and (task.state is not TaskState.STARTED or (seen.worker and seen.worker != task.worker)):
            self.store.tasks.update(task.task_id, state=TaskState.STARTED, worker=seen.worker or task.worker)
        if seen.beat is not None:  # the transport tells a live task by its beat
            now = time.monotonic()
            last = self._beats.get(task.task_id)
            if last is not None and last[0] == seen.beat:
                if now - last[1] > self.lease_s:
                    self._lost(job, task, seen.worker)
                return
            self._beats[task.task_id] = (seen.beat, now)
        self._report(job, task, seen)

    def _report(self, job: Job, task: JobTask, seen: Seen) -> None:
        """The task's latest report, as the job's progress (the reply updater and the status page)."""
        report = seen.report
        if report is None or not report.stage:
            return
        message = f"{report.stage}: {report.message}" + (f" ({seen.where})" if seen.where else "")
        if self._reported.get(task.task_id) != message or seen.beat is not None:
            self._reported[task.task_id] = message
            self._heartbeat(job, message, report.progress if task.kind == "quantize" else None)

    def _lost(self, job: Job, task: JobTask, worker: str | None) -> None:
        """The task's worker is gone: the task is fenced and sent again, or the build fails."""
        log.warning("job %d: task %s on %s was lost; sending it again", job.id, task.task_id, worker)
        self._ended(
            task, self.transport.cancel(task), TaskState.LOST, f"{worker or 'its worker'} stopped reporting"
        )
        tasks = self.store.tasks.of_job(job.id)
        lost = sum(1 for t in tasks if (t.kind, t.sm, t.state) == (task.kind, task.sm, TaskState.LOST))
        if lost >= self.settings.max_attempts:  # tries the Hub's failures cost do not count
            self._fail(job, f"{task.kind} task lost with its worker {lost} times")
            return
        graph = _graph(job)
        if task.sm is None:
            repo_id = self.publisher.repo_id_for_spec(BuildSpec.model_validate(job.spec))
            self._send(job, graph.quantize, repo_id=repo_id)
            return
        quantized = self._quantized(job)
        if quantized is not None and quantized.draft is not None:
            self._send_sm(job, graph.task(task.sm), quantized)

    def _succeeded(self, job: Job, task: JobTask, result: TaskResult) -> None:
        if result.skipped:  # a fenced task that reached a worker: nothing ran
            self.store.tasks.update(task.task_id, state=TaskState.REVOKED, message=result.skipped)
            return
        if task.kind == "engine" and job.status is not JobStatus.RUNNING:
            if job.status in (JobStatus.BUILT, JobStatus.PUBLISHING):
                return  # finalising now: added by a later commit once that is done
            self._late_engine(job, task, result)
            return
        self._record_result(task, result)
        if task.kind != "quantize" or job.status is not JobStatus.RUNNING:
            return
        if not result.ok:
            cause = Cause.HUB if result.hub_failed else cause_of_manifest(result.manifest)
            manifest = result.manifest.model_dump(mode="json") if result.manifest else None
            where = f" (on {result.worker})" if result.worker else ""
            self._fail(job, f"{result.error}{where}", manifest, cause)
            return
        if result.draft is not None:
            for plan in _graph(job).sms:
                self._send_sm(job, plan, result)

    def _send_sm(self, job: Job, plan: TaskPlan, quantized: TaskResult) -> None:
        files = [a.path for a in quantized.manifest.artifacts] if quantized.manifest else []
        self._send(job, plan, draft=quantized.draft, files=files)

    def _failed(self, job: Job, task: JobTask, error: str, cause: Cause) -> None:
        """A task that ended without a result (the Hub, a bug, a worker error): recorded; a quantize task's
        job waits for another try or fails (`bot.retries`)."""
        self.store.tasks.update(task.task_id, state=TaskState.FAILED, message=error)
        if task.kind == "quantize":
            self._fail(job, f"the quantize task failed: {error}", None, cause)

    def _fail(
        self, job: Job, error: str, manifest: dict[str, Any] | None = None, cause: Cause = Cause.PERMANENT
    ) -> None:
        """The build failed: it waits for another try, or fails with the reason (`bot.retries`)."""
        self._move(self.retries.build_failed, job, self.owner, error, manifest, cause)

    def _record_result(self, task: JobTask, result: TaskResult) -> None:
        self.store.tasks.update(
            task.task_id,
            state=TaskState.SUCCEEDED,
            worker=result.worker,
            result=result.model_dump(mode="json"),
            message=result.summary()[:1000],
        )

    def _spent(self, task: JobTask, seen: Seen) -> None:
        """What an ended task ran for and cost, where its transport measures it."""
        if seen.running_s is not None:
            self.store.tasks.update(task.task_id, running_s=seen.running_s, cost_usd=seen.cost_usd)

    def _ended(self, task: JobTask, seen: Seen, state: TaskState, why: str) -> None:
        self._spent(task, seen)
        self.store.tasks.update(task.task_id, state=state, message=why)
        self._beats.pop(task.task_id, None)
        self._reported.pop(task.task_id, None)

    # ----------------------------------------------------------------------------------- fan-in, release

    def _quantized(self, job: Job) -> TaskResult | None:
        """What the job's quantize task answered (its manifest, the draft PR or the release found)."""
        for task in reversed(self.store.tasks.of_job(job.id)):
            if task.kind == "quantize" and task.state is TaskState.SUCCEEDED and task.result:
                result = TaskResult.model_validate(task.result)
                if result.ok:
                    return result
        return None

    def _per_sm(self, job: Job) -> dict[int, TaskResult]:
        """The latest result of each SM's task, among the tasks that finished."""
        found: dict[int, TaskResult] = {}
        for task in self.store.tasks.of_job(job.id):
            if task.kind == "engine" and task.sm is not None and task.state is TaskState.SUCCEEDED:
                found[task.sm] = TaskResult.model_validate(task.result or {})
        return found

    def _fan_in(self, job: Job) -> None:
        """Built once every SM has a record, or once the deadline passed (the missing ones listed); a build
        on this machine at once."""
        quantized = self._quantized(job)
        if quantized is None or quantized.manifest is None:
            return
        manifest = quantized.manifest
        if not quantized.built_here:
            sms = [t.sm for t in _graph(job).sms if t.sm is not None]
            done = self._per_sm(job)
            waited = time.time() - _finished_at(self.store.tasks.of_job(job.id))
            deadline_s = self.settings.engine_deadline_s
            if quantized.draft is not None and set(sms) - set(done) and waited < deadline_s:
                return
            manifest = _merged(manifest, sms, done, deadline_s)
        self._move(self.store.lifecycle.finish_build, job.id, self.owner, manifest.model_dump(mode="json"))

    def _release(self, job: Job, approval: Approval | None) -> PublishResult:
        """The publish step's release of a job: a build on this machine published from its output, a
        fanned-out one's card and PR finalised by the bot."""
        quantized = self._quantized(job)
        if quantized is None:
            raise RuntimeError(f"job {job.id} is built but its quantize task recorded no result")
        if quantized.built_here:
            output = Path(BuildSpec.model_validate(job.spec).output_dir)
            return self.publisher.publish(output, approval=approval)
        if quantized.final is not None:
            return from_record(quantized.final)
        if quantized.draft is None:
            raise RuntimeError(f"job {job.id}'s quantize task staged no checkpoint")
        manifest = Manifest.model_validate(job.manifest)
        return self.publisher.finalise(manifest, quantized.draft, approval)

    def _late_engine(self, job: Job, task: JobTask, result: TaskResult) -> None:
        """An SM's record that came after the release: recorded, and added to it by a commit."""
        self.store.tasks.update(
            task.task_id,
            state=TaskState.SUCCEEDED,
            worker=result.worker,
            result=result.model_dump(mode="json"),
        )
        quantized = self._quantized(job)
        if job.status is not JobStatus.PUBLISHED or quantized is None or quantized.draft is None:
            return
        if quantized.manifest is None:
            return
        sms = [t.sm for t in _graph(job).sms if t.sm is not None]
        manifest = _merged(quantized.manifest, sms, self._per_sm(job), self.settings.engine_deadline_s)
        try:
            where = self.publisher.amend(manifest, quantized.draft)
        except Exception:
            log.exception("job %d: could not add the late engine for sm%s", job.id, task.sm)
            return
        if where is None:
            log.info("job %d: the release's PR was declined; sm%s's engine record not added", job.id, task.sm)
            return
        self._move(self.store.lifecycle.record_late_engines, job.id, manifest.model_dump(mode="json"))
        log.info("job %d: late engine record for sm%s added to %s", job.id, task.sm, where)

    # ----------------------------------------------------------------------------------- cancel, leases

    def _cancel_cancelled(self) -> None:
        for job_id in self._rounds.cancelled():
            for task in self.store.tasks.of_job(job_id):
                if not task.finished:
                    self._cancel(job_id, task)
            quantized = self._quantized(self.store.jobs.get(job_id))
            if quantized is not None and quantized.draft is not None:
                try:
                    self.publisher.withdraw(quantized.draft, "The build was cancelled.")
                except HubError as e:
                    log.warning("job %d: its draft PR %s stays open: %s", job_id, quantized.draft.url, e)

    def _cancel(self, job_id: int, task: JobTask) -> None:
        self._ended(task, self.transport.cancel(task), TaskState.REVOKED, "cancelled")
        log.info("job %d: task %s cancelled", job_id, task.task_id)

    def _heartbeat(self, job: Job, message: str, progress: float | None = None) -> None:
        """Progress on the job (the reply updater and the status page read it); renews its lease."""
        try:
            self.store.jobs.heartbeat(
                job.id, self.owner, self.lease_s, progress=progress, message=message[:500]
            )
        except GuardFailed as e:  # the job moved meanwhile (cancelled, failed): nothing to renew
            log.debug("job %d: no lease to renew: %s", job.id, e)
            return
        self._renewed[job.id] = (message, time.monotonic())

    def _renew_leases(self) -> None:
        now = time.monotonic()
        for job in self.store.jobs.list({JobStatus.RUNNING}, limit=10_000):
            last = self._renewed.get(job.id)
            if job.lease_owner == self.owner and (last is None or now - last[1] >= self.lease_s / 4):
                self._heartbeat(job, job.progress_message or "queued on the broker")

    @staticmethod
    def _move(move: Callable[..., T], *args: object, **kwargs: object) -> T | None:
        """A lifecycle move that may find the job moved meanwhile (cancelled, requeued): said, not raised."""
        try:
            return move(*args, **kwargs)
        except GuardFailed as e:
            log.info("%s: %s", move.__name__, e)
            return None


def _graph(job: Job) -> TaskGraph:
    """The job's stored plan; a job queued without one (by hand, or before plans were stored) gets the
    plain one of its spec: each SM on its queue, no flavour."""
    if job.plan is not None:
        return TaskGraph.model_validate(job.plan)
    return TaskGraph.of(BuildSpec.model_validate(job.spec))


def _finished_at(tasks: list[JobTask]) -> float:
    """When the quantize task finished (epoch seconds), from which the engine deadline runs."""
    done = [t.finished_at for t in tasks if t.kind == "quantize" and t.finished_at is not None]
    return max(done).timestamp() if done else time.time()


def _merged(manifest: Manifest, sms: list[int], done: dict[int, TaskResult], deadline_s: float) -> Manifest:
    """The quantize manifest completed with every SM's record, the engines' artifacts and the SMs' serving
    checks."""
    records, artifacts = [], list(manifest.artifacts)
    for sm in sms:
        found = done.get(sm)
        if found is None or found.record is None:
            reason = f"no engine record within engine_deadline_s ({deadline_s:.0f} s); added when it finishes"
            records.append(EngineRecord(sm=sm, status="not_built", reason=reason))
            continue
        records.append(found.record)
        artifacts += found.artifacts
    spec = manifest.require_spec().model_copy(update={"target_sms": sms})
    serving = [record for sm in sms for record in (done[sm].serving if sm in done else [])]
    return manifest.model_copy(
        update={"spec": spec, "engines": records, "artifacts": artifacts, "serving": serving}
    )
