"""Starting and watching a build worker, the one way `quantbot build` and the executor both use.

One place decides the command (`worker_command`, default this interpreter), where the spec file goes, the
environment the worker gets (the Hub endpoint and token from settings, unbuffered output), and how its
JSON-lines progress on stdout is read, so a worker started by hand and one started by the bot behave the same.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from bot.settings import Settings
from builders.spec import BuildSpec, Manifest, Progress


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


def spawn(
    command: list[str],
    log_path: Path,
    env: dict[str, str],
    own_group: bool,
    die_with_parent: bool,
    stdin: int = subprocess.DEVNULL,
) -> subprocess.Popen[bytes]:
    """A builder process: progress on a non-blocking stdout pipe, stderr appended to `log_path`."""
    with log_path.open("ab") as stderr:
        process = subprocess.Popen(
            command, stdin=stdin, stdout=subprocess.PIPE, stderr=stderr, env=env,
            start_new_session=own_group, preexec_fn=set_parent_death_signal if die_with_parent else None,
        )  # fmt: skip
    assert process.stdout is not None
    os.set_blocking(process.stdout.fileno(), False)
    return process


class Worker:
    """One build worker process: `builders.spec.Progress` lines on its stdout, its stderr in a log file."""

    def __init__(self, process: subprocess.Popen[bytes], spec_path: Path, *, own_group: bool) -> None:
        self.process = process
        self.spec_path = spec_path
        self.own_group = own_group
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
        die_with_parent: bool = False,
        argv: list[str] | None = None,
    ) -> Worker:
        """Write the spec and start `python -m builders run` on it.

        `own_group` puts the worker in a process group of its own, so that `signal` reaches its children and
        a terminal's Ctrl+C does not (the executor stops its builds itself); `quantbot build` leaves it in
        the terminal's group, so Ctrl+C stops both. `die_with_parent` has the kernel kill it (SIGKILL) when
        the process that started it dies, however it dies: a Celery worker's pool process killed with the
        task it runs leaves no build behind. `argv` replaces `run SPEC` (e.g. `engine SPEC --sm 89 …`).
        """
        spec_path = write_spec(spec)
        command = worker_argv(settings, spec_path, argv)
        process = spawn(command, log_path, worker_env(settings, env), own_group, die_with_parent)
        return cls(process, spec_path, own_group=own_group)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def exit_code(self) -> int | None:
        """The exit code once the worker has exited (negative: killed by that signal), else None."""
        return self.process.poll()

    def progress(self) -> list[Progress]:
        """The complete progress lines printed since the last call; never blocks."""
        stdout = self.process.stdout
        assert stdout is not None
        with contextlib.suppress(BlockingIOError, ValueError):  # nothing more now; closed
            while chunk := stdout.read(65536):
                self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        parsed = (Progress.parse_line(line.decode("utf-8", "replace")) for line in lines)
        return [p for p in parsed if p is not None]

    def wait(self, on_progress: Callable[[Progress], object], poll_s: float = 0.5) -> int:
        """Block until the worker exits, calling `on_progress` for each progress line; its exit code."""
        assert self.process.stdout is not None
        while True:
            with contextlib.suppress(ValueError, OSError):
                select.select([self.process.stdout], [], [], poll_s)
            exited = self.exit_code is not None
            for progress in self.progress():
                on_progress(progress)
            if exited:
                return self.process.wait()

    def signal(self, sig: int) -> None:
        """Send `sig` to the worker's process group (with `own_group`), else to the worker alone."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.own_group:  # the group outlives its leader: this reaches children left behind too
                os.killpg(self.pid, sig)
            else:
                self.process.send_signal(sig)


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
    how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
    return f"the builder stopped ({how}) without a manifest" + (f": {tail}" if tail else "")
