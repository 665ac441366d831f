"""Starting and watching a build worker, the one way `quantbot build` and the executor both use.

One place decides the command (`worker_command`, default this interpreter), where the spec file goes, the
environment the worker gets (the Hub endpoint and token from settings, unbuffered output), and how its
JSON-lines progress is read, so a worker started by hand and one started by the bot behave the same.

A worker outlives the bot that started it: its progress goes to a file in the work dir (not a pipe that
breaks when the bot dies), it runs in a session of its own (`own_group`), and its pid file records its pid,
its start time (`/proc/<pid>/stat`, so a reused pid is never taken for it), its spec and its progress file.
A restarted bot re-attaches to it with `Worker.adopt` instead of starting it again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from bot.settings import Settings
from builders.spec import BuildSpec, Manifest, Progress

PID_FILE = "worker.pid"


def write_spec(spec: BuildSpec) -> Path:
    """Write the spec into its work dir, where the worker and a resumed run find it."""
    work = Path(spec.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    return spec.write(work / "spec.json")


def worker_argv(settings: Settings, spec_path: Path, argv: list[str] | None = None) -> list[str]:
    """`python -m builders run SPEC.json` (or the builder command `argv` names: `verify …`, `engine …`)
    with the configured worker interpreter or container command."""
    return [*(settings.worker_command or [sys.executable]), "-m", "builders", *builder_args(spec_path, argv)]


def builder_args(spec_path: Path, argv: list[str] | None) -> list[str]:
    """The builder command: `argv`, or by default `run SPEC.json`."""
    return argv or ["run", str(spec_path)]


def set_parent_death_signal() -> None:
    """In the child, before exec: SIGKILL when the parent dies (Linux `prctl(PR_SET_PDEATHSIG)`)."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def worker_env(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The bot's environment plus the Hub settings the worker needs to fetch the upstream model."""
    env = os.environ | {"PYTHONUNBUFFERED": "1", "HF_ENDPOINT": settings.hf_endpoint}
    if settings.token():
        env["HF_TOKEN"] = settings.token() or ""
    return env | (extra or {})


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (`/proc/<pid>/stat`); None if gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state is field 3, starttime 22
    return None if fields[0] in ("Z", "X") else fields[19]


def lower_priority(pid: int, nice: int) -> None:
    """Run `pid` (and what it starts later) at `nice`, also against other sessions.

    With the kernel's autogroup scheduling, each session is one group that gets an equal share of the CPU
    whatever its processes' nice values; a worker in a session of its own therefore also gets its group's
    nice set, so the bot's own session wins the CPU when both want it."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    with contextlib.suppress(OSError):  # no autogroup file without CONFIG_SCHED_AUTOGROUP
        Path(f"/proc/{pid}/autogroup").write_text(f"{nice}\n")


def spawn(
    command: list[str],
    log_path: Path,
    progress_path: Path,
    env: dict[str, str],
    *,
    own_group: bool,
    die_with_parent: bool,
    stdin: int = subprocess.DEVNULL,
) -> subprocess.Popen[bytes]:
    """A builder process: its progress lines go to `progress_path` (a file, which a restarted bot can read
    too, unlike a pipe that dies with its reader), its stderr is appended to `log_path`."""
    progress_path.unlink(missing_ok=True)
    with log_path.open("ab") as stderr, progress_path.open("ab") as stdout:
        return subprocess.Popen(
            command,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            env=env,
            start_new_session=own_group,
            preexec_fn=set_parent_death_signal if die_with_parent else None,
        )


class Worker:
    """One build worker process: `builders.spec.Progress` lines in its progress file, stderr in a log file.

    `process` is None for a worker adopted from an earlier run of the bot (not this process's child): its
    exit is seen by its pid going away, and its exit code is unknown (its manifest says how it ended).
    """

    def __init__(
        self,
        pid: int,
        spec_path: Path,
        progress_path: Path,
        *,
        own_group: bool,
        process: subprocess.Popen[bytes] | None = None,
        started: str | None = None,
    ) -> None:
        self.pid = pid
        self.spec_path = spec_path
        self.progress_path = progress_path
        self.own_group = own_group
        self._process = process
        self.started = started
        self._offset = 0
        self._buffer = b""

    @classmethod
    def start(
        cls,
        settings: Settings,
        spec: BuildSpec,
        *,
        log_path: Path,
        env: dict[str, str] | None = None,
        own_group: bool = False,
        nice: int = 0,
        die_with_parent: bool = False,
        argv: list[str] | None = None,
    ) -> Worker:
        """Write the spec and start `python -m builders run` on it.

        `own_group` puts the worker in a session and process group of its own, so that `signal` reaches its
        children, a terminal's Ctrl+C does not (the executor stops its builds itself) and the worker lives on
        if the bot dies; its pid file is then written for a restarted bot. `quantbot build` leaves it in the
        terminal's group, so Ctrl+C stops both. `nice` > 0 runs it at lower priority (`lower_priority`).
        `die_with_parent` has the kernel kill it (SIGKILL) when the process that started it dies, however it
        dies: a Celery worker's pool process killed with the task it runs leaves no build behind. `argv`
        replaces `run SPEC` (e.g. `engine SPEC --sm 89 …`).
        """
        spec_path = write_spec(spec)
        progress_path = log_path.with_suffix(".progress")
        process = spawn(
            worker_argv(settings, spec_path, argv),
            log_path,
            progress_path,
            worker_env(settings, env),
            own_group=own_group,
            die_with_parent=die_with_parent,
        )
        if nice > 0:
            lower_priority(process.pid, nice)
        worker = cls.of(process, spec_path, progress_path, own_group=own_group)
        if own_group and not die_with_parent:  # a build that outlives its starter: a restarted bot adopts it
            (spec_path.parent / PID_FILE).write_text(
                f"{worker.pid}\n{spec_path}\n{worker.started}\n{progress_path}\n"
            )
        return worker

    @classmethod
    def of(
        cls, process: subprocess.Popen[bytes], spec_path: Path, progress_path: Path, *, own_group: bool
    ) -> Worker:
        """The worker of a builder process started here (by `start`, or a warm spare that took the build)."""
        return cls(
            process.pid,
            spec_path,
            progress_path,
            own_group=own_group,
            process=process,
            started=start_time(process.pid),
        )

    @classmethod
    def adopt(cls, work: Path) -> Worker | None:
        """The builder an earlier run of the bot left running on `work`, if its pid file names a live one.

        The pid must still be that builder: the same start time, and `builders` and the spec in its command
        line (a pid reused by another process is left alone)."""
        try:
            pid_text, spec_path, started, progress_path = (work / PID_FILE).read_text().split("\n")[:4]
            pid = int(pid_text)
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except (OSError, ValueError):
            return None
        if start_time(pid) != started or "builders" not in cmdline or spec_path not in cmdline:
            return None
        return cls(pid, Path(spec_path), Path(progress_path), own_group=True, started=started)

    @property
    def process(self) -> subprocess.Popen[bytes]:
        """The process handle of a worker started here (an adopted one has none)."""
        assert self._process is not None, "an adopted worker is not this process's child"
        return self._process

    def remove_pid_file(self) -> None:
        (self.spec_path.parent / PID_FILE).unlink(missing_ok=True)

    @property
    def exited(self) -> bool:
        """Whether the worker has exited."""
        if self._process is not None:
            return self._process.poll() is not None
        return start_time(self.pid) != self.started

    @property
    def exit_code(self) -> int | None:
        """The exit code once the worker has exited (negative: killed by that signal); None while it runs,
        and for an adopted worker, whose code its parent (the dead bot) never collected."""
        return self._process.poll() if self._process is not None else None

    def progress(self) -> list[Progress]:
        """The complete progress lines written since the last call; never blocks."""
        with contextlib.suppress(OSError), self.progress_path.open("rb") as f:
            f.seek(self._offset)
            chunk = f.read()
            self._offset += len(chunk)
            self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        parsed = (Progress.parse_line(line.decode("utf-8", "replace")) for line in lines)
        return [p for p in parsed if p is not None]

    def wait(self, on_progress: Callable[[Progress], object], poll_s: float = 0.2) -> int:
        """Block until the worker (started here) exits, calling `on_progress` for each progress line."""
        while True:
            exited = self.exited
            for progress in self.progress():
                on_progress(progress)
            if exited:
                return self.process.wait()
            with contextlib.suppress(subprocess.TimeoutExpired):  # back at once when it exits
                self.process.wait(timeout=poll_s)

    def signal(self, sig: int) -> None:
        """Send `sig` to the worker's process group (with `own_group`), else to the worker alone."""
        if self._process is None and self.exited:
            return  # adopted and gone: its pid may belong to someone else by now
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.own_group:  # the group outlives its leader: this reaches children left behind too
                os.killpg(self.pid, sig)
            elif self._process is not None:
                self._process.send_signal(sig)


def read_manifest(spec: BuildSpec) -> Manifest | None:
    """The manifest the build left in its output dir; None when it left none that reads."""
    try:
        return Manifest.read(spec.manifest_path)
    except (OSError, ValueError):
        return None


def failure_reason(manifest: Manifest | None, code: int | None, log_path: Path) -> str:
    """Why a build failed, in one line: the manifest's error, else the worker's last words."""
    if manifest is not None and manifest.errors:
        error = manifest.errors[0]
        return f"{error.stage}: {error.message}"[:1000]
    tail = ""
    with contextlib.suppress(OSError):
        lines = [line for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
        tail = lines[-1][:300] if lines else ""
    if code is None:  # an adopted builder: the bot that started it, and collected its code, is gone
        how = "exit code unknown"
    else:
        how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
    return f"the builder stopped ({how}) without a manifest" + (f": {tail}" if tail else "")
