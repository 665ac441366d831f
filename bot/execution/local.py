"""The local executor: builds in worker processes on this machine, one per slot, each under a lease.

- one slot per local GPU (its process sees only that GPU through `CUDA_VISIBLE_DEVICES`), or one CPU slot
  when there is none. A free slot claims the oldest queued job (running, leased) and starts a worker on it
  (`bot.launcher.launch.Worker`) in a process group of its own;
- `poll()` reads the worker's progress lines, renews the lease (heartbeat) and records progress; a lease lost
  (the job was cancelled, or requeued because it looked dead) stops the process: SIGTERM to the group,
  SIGKILL after a grace period. A cancel is heard from the store's change listeners and acted on at once;
- `stop()` (the bot stopping on SIGTERM, a deploy) lets each build finish the stage it is in (its
  calibration included) for up to `shutdown_grace_s`, then stops it (Ctrl+C stops it at once); its job goes
  back to the queue and resumes after its last finished stage (a build that finished meanwhile is built);
- when a process exits, `_finish` decides the job's outcome in one place: built with the manifest, failed
  with the reason, given back to the queue (shutdown), or left alone (cancelled);
- the publish step (`bot.publishing.publish_step`) publishes what was built, in a thread of its own.

A bot killed mid-build loses nothing, and its builder lives on (it runs in a session of its own and writes
its progress to a file, `bot.launcher.launch`). On start, a running job leased by a dead bot of this host
whose builder is still alive (its pid file in the work dir names it) is adopted: the lease moves to this
bot and the builder goes on where it is, calibration and all. A job requeued meanwhile re-attaches the same
way when claimed; a builder that has died is rerun on the same work dir and resumes after its last
finished stage.

A build the Hub failed (down while downloading or reading calibration data: `hub_unavailable`) waits in the
queue and is tried again (`bot.retries`).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bot.execution.executor import Rounds
from bot.execution.slots import Slot, default_slots
from bot.launcher.launch import PID_FILE, Worker, failure_reason, read_manifest
from bot.publishing.publish_step import Publishes, PublishStep
from bot.retries import Retries, cause_of_manifest
from bot.scheduler import Scheduler
from bot.settings import Settings
from builders.spec import BuildSpec
from state import GuardFailed, Job, JobStatus, LeaseLost, Store

log = logging.getLogger(__name__)

STOP_GRACE_S = 10.0
STAGES_DIR = "stages"  # the builder's stage records in its work dir (builders/runner.py)
__all__ = ["PID_FILE", "LocalExecutor"]


@dataclass
class _Running:
    """A build in a slot: its job, its worker and what the worker last said."""

    job: Job
    worker: Worker
    stage: str = ""
    progress: float = 0.0
    message: str = ""
    beat_at: float = field(default_factory=time.monotonic)
    stop_reason: str | None = None  # "cancelled", "shutdown", "lease lost"
    kill_at: float | None = None
    drain_until: float | None = None  # stopping: the stage in hand may finish until then


class LocalExecutor:
    """Builds in local processes (one per slot) and publishes what they built."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        publisher: Publishes | None,
        *,
        slots: list[Slot] | None = None,
        poll_s: float = 0.5,
        scheduler: Scheduler | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.slots = slots if slots is not None else default_slots()
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.lease_s = settings.lease_s
        self.poll_s = poll_s
        self.retries = Retries(settings, store)
        self.publish_step = PublishStep(
            store, publisher, owner=f"{self.worker}:publish", lease_s=self.lease_s, retries=self.retries
        )
        self._runs: dict[str, _Running] = {}  # slot name → its build
        self._lock = threading.RLock()
        self._rounds = Rounds("builds", self.poll, poll_s, busy=self.busy, scheduler=scheduler)

    # ------------------------------------------------------------------------------------- the interface

    def start(self) -> LocalExecutor:
        """Requeue jobs whose lease expired (a previous run died), then build and publish in threads."""
        self._rounds.listen(self.store.changes)
        with self._lock:
            self._adopt_orphans()
        self.store.lifecycle.requeue_expired(max_attempts=self.settings.max_attempts)
        self._rounds.start()
        self.publish_step.start()
        return self

    def stop(self, timeout: float | None = None, *, drain: bool = True) -> None:
        """Let each build finish its stage (`drain`: up to `shutdown_grace_s`), then stop it (its job goes
        back to the queue, to resume on the next start), and the threads."""
        grace = self.settings.shutdown_grace_s if drain else 0.0
        self._rounds.stopping.set()
        with self._lock:
            for slot in self.slots:
                self._stop(slot, "shutdown", drain_s=grace)
        timeout = grace + STOP_GRACE_S + 5 if timeout is None else timeout
        self._rounds.stop(timeout)
        self.publish_step.stop(timeout)

    def poll(self) -> None:
        with self._lock:
            self._stop_cancelled()
            for slot in self.slots:
                if slot.name in self._runs:
                    self._tend(slot)
                if slot.name not in self._runs and not self._rounds.stopping.is_set():
                    self._start_next(slot)

    def busy(self) -> bool:
        with self._lock:
            return bool(self._runs)

    # --------------------------------------------------------------------------------- running and stopping

    def _stop_cancelled(self) -> None:
        cancelled = self._rounds.cancelled()
        for slot in self.slots:
            run = self._runs.get(slot.name)
            if run is not None and run.job.id in cancelled:
                self._stop(slot, "cancelled")

    def _start_next(self, slot: Slot) -> None:
        owner = self._owner(slot)
        job = self.store.lifecycle.claim_build(owner, self.lease_s)
        if job is None:
            return
        try:
            spec = BuildSpec.model_validate(job.spec)
            worker = self._launch(spec, slot, job.attempts)
        except (OSError, ValueError) as e:
            log.error("job %d could not start: %s", job.id, e)
            self.store.lifecycle.fail_start(job.id, owner, f"could not start the build: {e}")
            return
        self._runs[slot.name] = _Running(job, worker)
        log.info("job %d (%s) started in slot %s, pid %d", job.id, job.label, slot.name, worker.pid)

    def _launch(self, spec: BuildSpec, slot: Slot, attempt: int) -> Worker:
        """Re-attach to the builder an earlier bot left running on this work dir, else start one."""
        work = Path(spec.work_dir)
        worker = Worker.adopt(work)
        if worker is not None:
            log.warning("re-attached to the builder (pid %d) still running on %s", worker.pid, work)
            return worker
        work.mkdir(parents=True, exist_ok=True)
        return Worker.start(
            self.settings,
            spec,
            log_path=work / f"worker-{attempt}.log",
            env=slot.env,
            own_group=True,
            nice=slot.nice,
        )

    def _adopt_orphans(self) -> None:
        """Take over the running jobs of a dead bot of this host whose builders still run, slot for slot."""
        host = socket.gethostname()
        for job in self.store.jobs.list({JobStatus.RUNNING}, limit=500):
            dead, slot = job.lease_owner or "", None
            parts = dead.split(":")
            if len(parts) == 3 and parts[0] == host and dead != self._owner(Slot(parts[2])):
                slot = next((s for s in self.slots if s.name == parts[2] and s.name not in self._runs), None)
            if slot is None or _alive(int(parts[1]) if parts[1].isdigit() else 0):
                continue  # another host's, or its bot still lives, or no such free slot here
            worker = Worker.adopt(Path(BuildSpec.model_validate(job.spec).work_dir))
            if worker is None:
                continue  # its builder died too: housekeeping requeues the job when its lease expires
            try:
                job = self.store.lifecycle.adopt(job.id, dead, self._owner(slot), self.lease_s, worker.pid)
            except GuardFailed:
                continue
            self._runs[slot.name] = _Running(job, worker)
            log.warning("job %d: re-attached to its builder (pid %d), slot %s", job.id, worker.pid, slot.name)

    def _tend(self, slot: Slot) -> None:
        run = self._runs[slot.name]
        stage_changed = self._read_progress(run)
        now = time.monotonic()
        if run.drain_until is not None and (stage_changed or _recorded(run) or now >= run.drain_until):
            self._term(run)  # the stage in hand is recorded (or the grace is over): stop it now
        if run.stop_reason is None and (stage_changed or now - run.beat_at >= self.lease_s / 4):
            self._beat(slot, run)
        if run.kill_at is not None and now >= run.kill_at and not run.worker.exited:
            run.worker.signal(signal.SIGKILL)
            run.kill_at = None
        if run.worker.exited:
            self._read_progress(run)
            del self._runs[slot.name]
            self._finish(slot, run)

    def _beat(self, slot: Slot, run: _Running) -> None:
        """Renew the lease and record progress (the store tells the reply updater of the new stage)."""
        run.beat_at = time.monotonic()
        try:
            self.store.jobs.heartbeat(
                run.job.id,
                self._owner(slot),
                self.lease_s,
                progress=run.progress,
                message=run.message or None,
            )
        except LeaseLost as e:
            log.warning("job %d: %s; stopping its build", run.job.id, e)
            self._stop(slot, "cancelled" if e.actual is JobStatus.CANCELLED else "lease lost")

    @staticmethod
    def _read_progress(run: _Running) -> bool:
        """Take the progress lines the worker printed; True when the stage changed."""
        stage_changed = False
        for progress in run.worker.progress():
            stage_changed |= progress.stage != run.stage
            run.stage, run.progress = progress.stage, progress.overall
            run.message = f"{progress.stage}: {progress.message}"[:500]
        return stage_changed

    def _stop(self, slot: Slot, reason: str, drain_s: float = 0.0) -> None:
        run = self._runs.get(slot.name)
        if run is None or run.stop_reason is not None:
            return
        run.stop_reason = reason
        if drain_s > 0:
            run.drain_until = time.monotonic() + drain_s
        else:
            self._term(run)

    @staticmethod
    def _term(run: _Running) -> None:
        run.drain_until = None
        run.worker.signal(signal.SIGTERM)
        run.kill_at = time.monotonic() + STOP_GRACE_S

    def _finish(self, slot: Slot, run: _Running) -> None:
        """The one place a build's outcome becomes the job's status."""
        job, owner = run.job, self._owner(slot)
        spec = BuildSpec.model_validate(job.spec)
        run.worker.remove_pid_file()
        manifest = read_manifest(spec)
        code = run.worker.exit_code
        lifecycle = self.store.lifecycle
        try:
            if run.stop_reason in ("cancelled", "lease lost"):
                log.info("job %d stopped (%s)", job.id, run.stop_reason)
            elif manifest is not None and manifest.ok:  # also a build that finished while the bot stopped
                lifecycle.finish_build(job.id, owner, manifest.model_dump(mode="json"))
            elif run.stop_reason == "shutdown":
                lifecycle.give_back(job.id, owner, "bot shutting down")
            else:
                log_path = Path(spec.work_dir) / f"worker-{job.attempts}.log"
                dumped = manifest.model_dump(mode="json") if manifest else None
                reason = failure_reason(manifest, code, log_path)
                self.retries.build_failed(job, owner, reason, dumped, cause_of_manifest(manifest))
        except GuardFailed as e:  # cancelled or requeued meanwhile: the store already says what happened
            log.warning("job %d finished (exit %s) but %s", job.id, code, e)
        log.info("job %d process exited with %s", job.id, code)

    def _owner(self, slot: Slot) -> str:
        return f"{self.worker}:{slot.name}"


def _recorded(run: _Running) -> bool:
    """Whether the builder has recorded the stage it is in as finished (a rerun resumes after it)."""
    record = Path(BuildSpec.model_validate(run.job.spec).work_dir) / STAGES_DIR / f"{run.stage}.json"
    try:
        return json.loads(record.read_text()).get("status") in ("succeeded", "skipped")
    except (OSError, ValueError, AttributeError):
        return False


def _alive(pid: int) -> bool:
    """Whether a process with this pid exists (a bot's, from a lease owner's name)."""
    return pid > 0 and Path(f"/proc/{pid}").exists()
