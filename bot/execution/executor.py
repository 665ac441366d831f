"""Running jobs: builds in worker processes, then the publish step, each under a lease in the store.

`Executor` is what the rest of the bot sees (`submit`, `cancel`, `poll`); a Celery executor (one queue per
SM, DESIGN.md decision 5) implements the same three calls. `LocalExecutor` runs on this machine:

- one slot per local GPU (its process sees only that GPU through `CUDA_VISIBLE_DEVICES`), or one CPU slot
  when there is none. A free slot claims the oldest queued job (running, leased), writes its spec and starts
  `python -m builders run SPEC.json` in a process group of its own;
- `poll()` reads the builders' progress lines (`builders.spec.Progress`), renews the lease (heartbeat) and
  records progress; a lease lost (the job was cancelled, or requeued because it looked dead) stops the
  process: SIGTERM to the group, SIGKILL after a grace period;
- when a process exits, its slot decides the job's status in one place (`_finish`): built with the manifest,
  failed with the reason, given back to the queue (shutdown), or left alone (cancelled);
- a publish thread claims built jobs (publishing, leased), runs the publisher and records the release.

A bot killed mid-build loses nothing: the job's lease expires, housekeeping requeues it, and the builder,
rerun on the same work dir, resumes after its last finished stage. A stale builder of the dead bot, found
through the pid file in the work dir, is stopped before the new one starts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bot.eligibility.targets import local_gpus
from bot.errors import QuantbotError
from bot.execution.launch import worker_argv, worker_env, write_spec
from bot.settings import Settings
from builders.spec import BuildSpec, Manifest, Progress
from handlers.replies import refresh
from state import GuardFailed, Job, JobStatus, LeaseLost, ReleaseKind, ReleaseStatus, Store, WatchKind

log = logging.getLogger(__name__)

STOP_GRACE_S = 10.0
PID_FILE = "worker.pid"
_CANCELLABLE = {JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.BUILT}


class Executor(Protocol):
    """Where jobs run. Implementations claim jobs from the store themselves; these calls only steer them."""

    def submit(self, job_id: int) -> None:
        """A job was queued (or requeued, or built and ready to publish): look at it soon."""

    def cancel(self, job_id: int) -> bool:
        """Cancel a queued, running or built job and stop its process; False when it was past cancelling."""

    def poll(self) -> None:
        """Advance without blocking: start jobs on free slots, record progress, finish exited builds."""


@dataclass
class Slot:
    """Where one build runs at a time: a GPU (`gpu` is its index) or the CPU."""

    name: str
    gpu: int | None = None
    run: _Running | None = None

    @property
    def env(self) -> dict[str, str]:
        return {"CUDA_VISIBLE_DEVICES": "" if self.gpu is None else str(self.gpu)}


@dataclass
class _Running:
    job: Job
    process: subprocess.Popen[bytes]
    buffer: bytes = b""
    stage: str = ""
    progress: float = 0.0
    message: str = ""
    beat_at: float = field(default_factory=time.monotonic)
    stop_reason: str | None = None  # "cancelled", "shutdown", "lease lost"
    kill_at: float | None = None


class LocalExecutor:
    """Builds in local processes (one per GPU slot, or one on the CPU) and publishes what they built."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        hub: Any,
        publisher: Any,
        *,
        slots: list[Slot] | None = None,
        poll_s: float = 0.5,
    ) -> None:
        self.settings = settings
        self.store = store
        self.hub = hub
        self.publisher = publisher
        self.slots = slots if slots is not None else default_slots()
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.lease_s = settings.lease_s
        self.poll_s = poll_s
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._publish_wake = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._seen: dict[str, str] = {}  # reply comment id → last text posted
        self._dirty: set[str] = set()  # build keys whose replies to refresh, outside the lock

    # ------------------------------------------------------------------------------------- the interface

    def submit(self, job_id: int) -> None:
        self._wake.set()
        self._publish_wake.set()

    def cancel(self, job_id: int) -> bool:
        try:
            job = self.store.jobs.transition(job_id, _CANCELLABLE, JobStatus.CANCELLED, note="cancelled")
        except GuardFailed:
            return False
        with self._lock:
            for slot in self.slots:
                if slot.run is not None and slot.run.job.id == job_id:
                    self._stop(slot, "cancelled")
        self._refresh(job.build_key)
        self._flush()
        return True

    def poll(self) -> None:
        with self._lock:
            for slot in self.slots:
                if slot.run is not None:
                    self._tend(slot)
                if slot.run is None and not self._stopping.is_set():
                    self._start_next(slot)
        self._flush()

    # --------------------------------------------------------------------------------- running and stopping

    def start(self) -> LocalExecutor:
        """Requeue jobs whose lease expired (a previous run died), then build and publish in threads."""
        self.store.jobs.requeue_expired(max_attempts=self.settings.max_attempts)
        for target, name in ((self._build_loop, "builds"), (self._publish_loop, "publish")):
            thread = threading.Thread(target=target, name=f"quantbot-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = STOP_GRACE_S + 5) -> None:
        """Stop the builds (their jobs go back to the queue, to resume on the next start) and the threads."""
        self._stopping.set()
        with self._lock:
            for slot in self.slots:
                if slot.run is not None:
                    self._stop(slot, "shutdown")
        self._wake.set()
        self._publish_wake.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def busy(self) -> bool:
        """Whether a build is running in some slot."""
        with self._lock:
            return any(slot.run is not None for slot in self.slots)

    def _build_loop(self) -> None:
        while True:
            try:
                self.poll()
            except Exception:  # the store or the Hub failed this round; the next round tries again
                log.exception("executor poll failed")
            if self._stopping.is_set() and not self.busy():
                return
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def _start_next(self, slot: Slot) -> None:
        job = self.store.jobs.claim(f"{self.worker}:{slot.name}", self.lease_s)
        if job is None:
            return
        try:
            spec = BuildSpec.model_validate(job.spec)
            process = self._launch(spec, slot, job.attempts)
        except (OSError, ValueError) as e:
            log.error("job %d could not start: %s", job.id, e)
            with contextlib.suppress(GuardFailed):
                self.store.jobs.transition(
                    job.id, {JobStatus.RUNNING}, JobStatus.FAILED, owner=self._owner(slot),
                    error=f"could not start the build: {e}",
                )  # fmt: skip
            self._refresh(job.build_key)
            return
        slot.run = _Running(job, process)
        log.info("job %d (%s) started in slot %s, pid %d", job.id, job.label, slot.name, process.pid)
        self._refresh(job.build_key)

    def _launch(self, spec: BuildSpec, slot: Slot, attempt: int) -> subprocess.Popen[bytes]:
        work = Path(spec.work_dir)
        _stop_stale_worker(work)
        spec_path = write_spec(spec)
        with (work / f"worker-{attempt}.log").open("ab") as stderr:
            process = subprocess.Popen(
                worker_argv(self.settings, spec_path),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=worker_env(self.settings, slot.env),
                start_new_session=True,  # its own process group: a stop reaches its children too
            )
        assert process.stdout is not None
        os.set_blocking(process.stdout.fileno(), False)
        (work / PID_FILE).write_text(f"{process.pid}\n{spec_path}\n")
        return process

    def _tend(self, slot: Slot) -> None:
        run = slot.run
        assert run is not None
        changed = self._read_progress(run)
        now = time.monotonic()
        if run.stop_reason is None and (changed or now - run.beat_at >= self.lease_s / 4):
            self._beat(slot, run, changed)
        if run.kill_at is not None and now >= run.kill_at and run.process.poll() is None:
            _signal_group(run.process, signal.SIGKILL)
            run.kill_at = None
        if run.process.poll() is not None:
            self._read_progress(run)
            slot.run = None
            self._finish(slot, run)

    def _beat(self, slot: Slot, run: _Running, changed: bool) -> None:
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
            return
        if changed:
            self._refresh(run.job.build_key)

    def _read_progress(self, run: _Running) -> bool:
        """Take the complete lines the builder printed; True when the stage changed (worth a reply edit)."""
        assert run.process.stdout is not None
        try:
            while chunk := run.process.stdout.read(65536):
                run.buffer += chunk
        except (BlockingIOError, ValueError):
            pass
        *lines, run.buffer = run.buffer.split(b"\n")
        stage_changed = False
        for line in lines:
            progress = Progress.parse_line(line.decode("utf-8", "replace"))
            if progress is None:
                continue
            stage_changed |= progress.stage != run.stage
            run.stage, run.progress = progress.stage, progress.overall
            run.message = f"{progress.stage}: {progress.message}"[:500]
        return stage_changed

    def _stop(self, slot: Slot, reason: str) -> None:
        run = slot.run
        if run is None or run.stop_reason is not None:
            return
        run.stop_reason = reason
        _signal_group(run.process, signal.SIGTERM)
        run.kill_at = time.monotonic() + STOP_GRACE_S

    def _finish(self, slot: Slot, run: _Running) -> None:
        """The one place a build's outcome becomes the job's status."""
        job, owner = run.job, self._owner(slot)
        spec = BuildSpec.model_validate(job.spec)
        (Path(spec.work_dir) / PID_FILE).unlink(missing_ok=True)
        manifest = _read_manifest(spec)
        code = run.process.returncode
        try:
            if run.stop_reason in ("cancelled", "lease lost"):
                log.info("job %d stopped (%s)", job.id, run.stop_reason)
            elif run.stop_reason == "shutdown":
                self.store.jobs.transition(
                    job.id, {JobStatus.RUNNING}, JobStatus.QUEUED, owner=owner, note="bot shutting down"
                )
            elif manifest is not None and manifest.ok:
                self.store.jobs.transition(
                    job.id, {JobStatus.RUNNING}, JobStatus.BUILT, owner=owner,
                    manifest=manifest.model_dump(mode="json"), progress_message="built",
                )  # fmt: skip
                self._publish_wake.set()
            else:
                self.store.jobs.transition(
                    job.id, {JobStatus.RUNNING}, JobStatus.FAILED, owner=owner,
                    manifest=manifest.model_dump(mode="json") if manifest else None,
                    error=_failure(manifest, code, Path(spec.work_dir) / f"worker-{job.attempts}.log"),
                )  # fmt: skip
        except GuardFailed as e:  # cancelled or requeued meanwhile: the store already says what happened
            log.warning("job %d finished (exit %s) but %s", job.id, code, e)
        log.info("job %d process exited with %s", job.id, code)
        self._refresh(job.build_key)

    def _owner(self, slot: Slot) -> str:
        return f"{self.worker}:{slot.name}"

    # ------------------------------------------------------------------------------------------ publishing

    def _publish_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                job = self.store.jobs.claim_publish(f"{self.worker}:publish", self.lease_s)
            except Exception:
                log.exception("claiming a job to publish failed")
                job = None
            if job is None:
                self._publish_wake.wait(5.0)
                self._publish_wake.clear()
                continue
            self.publish(job)

    def publish(self, job: Job) -> None:
        """Publish one built job (already claimed: publishing) and record the release it made."""
        owner = f"{self.worker}:publish"
        keep_alive = threading.Event()
        beats = threading.Thread(target=self._keep_lease, args=(job.id, owner, keep_alive), daemon=True)
        beats.start()
        try:
            result = self.publisher.publish(Path(job.spec["output_dir"]), approval=self._approval(job.repo))
        except QuantbotError as e:
            self._publish_failed(job, owner, str(e))
        except Exception as e:  # a bug: keep the job, say what happened, let housekeeping retry
            log.exception("publishing job %d failed", job.id)
            self._publish_failed(job, owner, f"{type(e).__name__}: {e}")
        else:
            self._record_release(job, result)
            with contextlib.suppress(GuardFailed):
                self.store.jobs.transition(
                    job.id, {JobStatus.PUBLISHING}, JobStatus.PUBLISHED, owner=owner,
                    progress_message=result.message,
                )  # fmt: skip
            log.info("job %d published: %s (%s)", job.id, result.url, result.status.value)
        finally:
            keep_alive.set()
            beats.join()
        self._refresh(job.build_key)
        self._flush()

    def _publish_failed(self, job: Job, owner: str, error: str) -> None:
        log.warning("publishing job %d failed: %s", job.id, error)
        with contextlib.suppress(GuardFailed):
            self.store.jobs.transition(
                job.id,
                {JobStatus.PUBLISHING},
                JobStatus.FAILED,
                owner=owner,
                error=f"publish failed: {error}",
            )

    def _keep_lease(self, job_id: int, owner: str, done: threading.Event) -> None:
        while not done.wait(self.lease_s / 4):
            try:
                self.store.jobs.heartbeat(job_id, owner, self.lease_s)
            except GuardFailed:
                return

    def _record_release(self, job: Job, result: Any) -> None:
        status = ReleaseStatus.PUBLISHED if result.status is ReleaseStatus.MERGED else result.status
        pr_number = result.pr_number if result.kind is ReleaseKind.PR else None
        known = self.store.releases.find(build_key=job.build_key, repo_id=result.repo_id, pr_number=pr_number)
        if not known:
            self.store.releases.record(
                build_key=job.build_key, repo_id=result.repo_id, kind=result.kind, url=result.url,
                pr_number=pr_number, job_id=job.id, status=status,
            )  # fmt: skip
        for release in known:
            if release.status is not status:
                with contextlib.suppress(GuardFailed, ValueError):
                    self.store.releases.set_status(release.id, {release.status}, status)
        for num in result.superseded:
            for old in self.store.releases.find(repo_id=result.repo_id, pr_number=num):
                with contextlib.suppress(GuardFailed, ValueError):
                    self.store.releases.set_status(old.id, {ReleaseStatus.OPEN}, ReleaseStatus.SUPERSEDED)
                self._refresh(old.build_key)

    def _approval(self, upstream: str) -> str | None:
        """The watch's approval mode for this upstream, else None (the publisher's configured default)."""
        watches = self.store.watches
        watch = watches.find(WatchKind.REPO, upstream) or watches.find(
            WatchKind.AUTHOR, upstream.split("/")[0]
        )
        return watch.approval.value if watch is not None else None

    def _refresh(self, build_key: str) -> None:
        """Mark the replies following `build_key` for an edit (done by `_flush`, outside the lock)."""
        with self._lock:
            self._dirty.add(build_key)

    def _flush(self) -> None:
        with self._lock:
            keys, self._dirty = self._dirty, set()
        for key in keys:
            try:
                refresh(self.store, self.hub, key, self._seen)
            except Exception:  # a reply is a courtesy: never let it break a build
                log.exception("could not refresh replies for %s", key[:12])


def default_slots() -> list[Slot]:
    """One slot per local GPU, or a single CPU slot on a machine without one."""
    gpus = local_gpus()
    return [Slot(f"gpu{g.index}", g.index) for g in gpus] or [Slot("cpu")]


def _read_manifest(spec: BuildSpec) -> Manifest | None:
    try:
        return Manifest.read(spec.manifest_path)
    except (OSError, ValueError):
        return None


def _failure(manifest: Manifest | None, code: int | None, log_path: Path) -> str:
    """Why a build failed, in one line: the manifest's error, else the worker's last words."""
    if manifest is not None and manifest.errors:
        error = manifest.errors[0]
        return f"{error.stage}: {error.message}"[:1000]
    tail = ""
    with contextlib.suppress(OSError):
        lines = [line for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
        tail = lines[-1][:300] if lines else ""
    how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
    return f"the builder stopped ({how}) without a manifest" + (f": {tail}" if tail else "")


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def _stop_stale_worker(work: Path) -> None:
    """Stop a builder that a dead bot left running on this work dir (its pid file names it)."""
    try:
        pid_text, spec_path = (work / PID_FILE).read_text().split("\n")[:2]
        pid = int(pid_text)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (OSError, ValueError):
        return
    if "builders" not in cmdline or spec_path not in cmdline:
        return  # the pid was reused by something else
    log.warning("stopping a stale builder (pid %d) left on %s", pid, work)
    for sig, wait in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.1)
        if not Path(f"/proc/{pid}").exists():
            return
