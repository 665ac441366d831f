"""The local transport: a job's whole build in a process on this machine, one per slot.

- one slot per local GPU (its process sees only that GPU through `CUDA_VISIBLE_DEVICES`), or one CPU slot
  when there is none (`bot.execution.slots`). The orchestrator sends a job while a slot is free; `send`
  starts its build (`bot.launcher.launch.Worker`: fetch, quantize, this machine's engines, validate) in a
  process group and session of its own, or re-attaches to the builder already running on its work dir;
- `status` reads the builder's progress lines and, once it exited, its manifest: the build is the whole
  release (nothing is staged on the Hub: the publish step publishes its output dir), a failed build says why
  from its manifest or its last words;
- `cancel` stops the builder: SIGTERM to its group, SIGKILL after `STOP_GRACE_S`;
- `stop` (the bot stopping on SIGTERM, a deploy) lets each build finish the stage it is in (its calibration
  included) for up to `shutdown_grace_s`, then stops it (Ctrl+C: at once); the orchestrator gives its job
  back to the queue, to resume after its last finished stage (a build that finished meanwhile is built).

A bot killed mid-build loses nothing: its builder runs on in its own session and writes its progress to a
file. A restarted bot of this host takes over the jobs of the dead one whose builders still run
(`take_over`: the pid file in the work dir names them), slot for slot, and the builder goes on where it
is. A job whose builder died too is sent again once its lease lapses, on the same work dir, and resumes
after its last finished stage.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bot.execution.slots import Slot, default_slots
from bot.execution.transport import Phase, Seen, Sent, Transport, TransportError
from bot.launcher.launch import Worker, failure_reason, read_manifest
from bot.settings import Settings
from builders.spec import BuildSpec, TaskPlan, TaskReport, TaskRequest, TaskResult
from state import JobTask

log = logging.getLogger(__name__)

STOP_GRACE_S = 10.0
STAGES_DIR = "stages"  # the builder's stage records in its work dir (builders/runner.py)


@dataclass
class _Run:
    """A build in a slot: its spec, its worker and what the worker last said."""

    spec: BuildSpec
    slot: Slot
    worker: Worker
    log_path: Path
    report: TaskReport | None = None
    stop_reason: str | None = None  # "cancelled", "shutdown"
    drain_until: float | None = None  # stopping: the stage in hand may finish until then
    kill_at: float | None = None

    def read_progress(self) -> bool:
        """Take the progress lines the worker printed; True when the stage changed."""
        changed = False
        for progress in self.worker.progress():
            changed |= self.report is None or progress.stage != self.report.stage
            self.report = TaskReport(
                stage=progress.stage, progress=progress.overall, message=progress.message
            )
        return changed

    def term(self) -> None:
        self.drain_until = None
        self.worker.signal(signal.SIGTERM)
        self.kill_at = time.monotonic() + STOP_GRACE_S

    def tend(self) -> None:
        """Progress read; a draining build stopped once its stage is recorded (or the grace is over); a
        stopped one killed once `STOP_GRACE_S` has passed."""
        changed = self.read_progress()
        now = time.monotonic()
        if self.drain_until is not None and (changed or self.stage_recorded() or now >= self.drain_until):
            self.term()
        if self.kill_at is not None and now >= self.kill_at and not self.worker.exited:
            self.worker.signal(signal.SIGKILL)
            self.kill_at = None

    def stage_recorded(self) -> bool:
        """Whether the builder has recorded the stage it is in as finished (a rerun resumes after it)."""
        stage = self.report.stage if self.report else ""
        record = Path(self.spec.work_dir) / STAGES_DIR / f"{stage}.json"
        try:
            return json.loads(record.read_text()).get("status") in ("succeeded", "skipped")
        except (OSError, ValueError, AttributeError):
            return False


class LocalTransport(Transport):
    """Builds in local processes, one per slot."""

    def __init__(self, settings: Settings, slots: list[Slot] | None = None) -> None:
        self.settings = settings
        self.slots = slots if slots is not None else default_slots()
        self.host = socket.gethostname()
        self.owner = f"{self.host}:{os.getpid()}:local"  # a restarted bot tells a dead one's jobs by it
        self._runs: dict[str, _Run] = {}  # task id → its build
        self._stopping: set[int] = set()  # the pids of cancelled builds not yet gone
        self._lock = threading.Lock()

    def ready(self) -> bool:
        return True

    def has_room(self) -> bool:
        return self._free() is not None

    def queue(self, plan: TaskPlan) -> str:
        return "local"

    def send(self, request: TaskRequest, task_id: str) -> Sent:
        """Start the job's build in a free slot, or follow on under this task the builder already running
        on its work dir (a restarted bot's, or a lease that lapsed while it ran)."""
        work = Path(request.spec.work_dir)
        for old_id, run in list(self._runs.items()):
            if Path(run.spec.work_dir) == work:
                self._runs[task_id] = self._runs.pop(old_id)
                return Sent(task_id, run.slot.name)
        slot = self._free()
        if slot is None:
            raise TransportError("every slot is busy", transient=True)
        log_path = work / f"worker-{request.attempt}.log"
        try:
            worker = Worker.adopt(work)
            if worker is not None:
                log.warning("re-attached to the builder (pid %d) still running on %s", worker.pid, work)
            else:
                work.mkdir(parents=True, exist_ok=True)
                worker = Worker.start(
                    self.settings,
                    request.spec,
                    log_path=log_path,
                    env=slot.env,
                    own_group=True,
                    nice=slot.nice,
                )
        except (OSError, ValueError) as e:
            raise TransportError(f"could not start the build: {e}") from e
        self._runs[task_id] = _Run(request.spec, slot, worker, log_path)
        log.info("job %d started in slot %s, pid %d", request.job_id, slot.name, worker.pid)
        return Sent(task_id, slot.name)

    def status(self, task: JobTask) -> Seen:
        run = self._runs.get(task.task_id)
        if run is None:  # a task of an earlier run of the bot that nobody took over: its job was sent again
            return Seen(Phase.CANCELLED, error="no longer followed: its job was sent again")
        run.tend()
        if not run.worker.exited:
            return Seen(Phase.RUNNING, run.report)
        del self._runs[task.task_id]
        run.read_progress()
        run.worker.remove_pid_file()
        manifest = read_manifest(run.spec)
        log.info("the build in slot %s exited with %s", run.slot.name, run.worker.exit_code)
        done = TaskResult(host=self.host, queue=run.slot.name, manifest=manifest)
        if manifest is not None and manifest.ok:  # also a build that finished while the bot stopped
            return Seen(Phase.SUCCEEDED, run.report, result=done)
        if run.stop_reason == "shutdown":
            return Seen(Phase.STOPPED)
        reason = failure_reason(manifest, run.worker.exit_code, run.log_path)
        return Seen(
            Phase.SUCCEEDED, run.report, result=done.model_copy(update={"ok": False, "error": reason})
        )

    def cancel(self, task: JobTask) -> Seen:
        """Stop the build: SIGTERM to its group now, SIGKILL after `STOP_GRACE_S`, in a thread."""
        run = self._runs.pop(task.task_id, None)
        if run is not None:
            run.stop_reason = "cancelled"
            run.term()
            with self._lock:
                self._stopping.add(run.worker.pid)
            threading.Thread(target=self._reap, args=(run,), name="quantbot-stop", daemon=True).start()
        return Seen(Phase.CANCELLED)

    def take_over(self, owner: str, task: JobTask, spec: BuildSpec) -> str | None:
        """A dead bot of this host left this task's builder running: it goes on in the same slot."""
        host, _, rest = owner.partition(":")
        pid, _, kind = rest.partition(":")
        if host != self.host or kind != "local" or owner == self.owner or _alive(pid):
            return None  # another host's, another transport's, or its bot still lives
        slot = self._free(task.queue)
        worker = Worker.adopt(Path(spec.work_dir)) if slot is not None else None
        if slot is None or worker is None:
            return None  # no such free slot here, or its builder died too
        log_path = Path(spec.work_dir) / f"worker-{task.attempt}.log"
        self._runs[task.task_id] = _Run(spec, slot, worker, log_path)
        log.warning("re-attached to the builder (pid %d) in slot %s", worker.pid, slot.name)
        return f"builder pid {worker.pid}"

    def stop(self, drain_s: float) -> float:
        """Let each build finish its stage for up to `drain_s`, then stop it; how long that may take."""
        for run in self._runs.values():
            if run.stop_reason is None:
                run.stop_reason = "shutdown"
                run.drain_until = time.monotonic() + drain_s
        return drain_s + STOP_GRACE_S + 5 if self._runs else 0.0

    def busy(self) -> bool:
        with self._lock:
            return bool(self._runs or self._stopping)

    def _free(self, name: str | None = None) -> Slot | None:
        """A slot no build holds (the one of that name)."""
        held = {run.slot.name for run in self._runs.values()}
        return next((s for s in self.slots if s.name not in held and name in (None, s.name)), None)

    def _reap(self, run: _Run) -> None:
        while not run.worker.exited:
            run.tend()
            time.sleep(0.05)
        run.worker.remove_pid_file()
        with self._lock:
            self._stopping.discard(run.worker.pid)


def _alive(pid: str) -> bool:
    """Whether a process with this pid exists (a bot's, from a lease owner's name)."""
    return pid.isdigit() and int(pid) > 0 and Path(f"/proc/{pid}").exists()
