"""Warm build processes for a `quantbot worker`: the toolchain's import paid while the worker is idle.

A build process spends seconds importing torch, transformers and its toolchain before it does anything
(benchmarks/bench_dispatch.py measures it). A worker keeps one spare process per toolchain in
`warm_toolchains` — `python -m builders warm gptq`, started while no build runs — and hands the next build
of that toolchain to it (builders/warm.py). The spare runs that one build and exits; a fresh spare is
started once the task has finished, off the critical path. Nothing is forked, so every build still has a
process of its own that no other build ran in: a CUDA crash or an OOM ends that build alone, and progress
(its progress file), cancel (its process group is signalled) and death with the worker (the parent-death
signal) are those of a cold build. A spare takes only a build whose environment is the one it started
with; any other build, and every build under `worker_command` (another interpreter, a container), starts
cold.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bot.launcher.launch import Worker, builder_args, spawn, worker_argv, worker_env, write_spec
from bot.settings import Settings
from builders.spec import BuildSpec
from builders.warm import READY, toolchain_for

log = logging.getLogger(__name__)
SPOOL = Path("builds") / "warm"  # in the data dir: the spares' logs until they take a build


def warm(data_dir: Path, toolchain: str) -> bool:
    """Whether a spare of `toolchain` of the worker whose data dir this is has finished its imports."""
    logs = (Path(data_dir) / SPOOL).glob(f"{toolchain}-*.log")
    return any(READY in log.read_text(errors="replace") for log in logs)


@dataclass
class _Spare:
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    log: Path
    progress: Path

    def usable(self, env: dict[str, str]) -> bool:
        return self.process.poll() is None and self.env == env

    def discard(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.log.unlink(missing_ok=True)
        self.progress.unlink(missing_ok=True)


class Spares:
    """The build processes of one build slot (a Celery pool process): warm when it can, cold otherwise."""

    def __init__(self, settings: Settings, env: dict[str, str]) -> None:
        self.settings = settings
        self.env = env  # what the slot adds to every build's environment (its CUDA_VISIBLE_DEVICES)
        self.spool = Path(settings.data_dir) / SPOOL
        self._idle: dict[str, _Spare] = {}

    def fill(self) -> None:
        """Start a spare for every warm toolchain that has none (they import while the slot is idle)."""
        if self.settings.worker_command:
            return
        for toolchain in self.settings.warm_toolchains:
            spare = self._idle.get(toolchain)
            if spare is None or spare.process.poll() is not None:
                self._idle[toolchain] = self._start(toolchain)

    def start(self, spec: BuildSpec, log_path: Path, argv: list[str] | None = None) -> Worker:
        """The build `argv` (default `run SPEC`) in a warm spare of its toolchain, else in a new process."""
        spare = self._idle.pop(toolchain_for(spec.format, argv), None)
        if spare is not None and spare.usable(worker_env(self.settings, self.env)):
            spec_path = write_spec(spec)
            order = {"argv": builder_args(spec_path, argv), "log": str(log_path)}
            assert spare.process.stdin is not None
            try:
                spare.process.stdin.write(json.dumps(order).encode() + b"\n")
                spare.process.stdin.close()
                log.info("build %s handed to a warm spare, pid %d", spec_path.parent, spare.process.pid)
                return Worker.of(spare.process, spec_path, spare.progress, own_group=True)
            except BrokenPipeError:  # it died in its imports: the build starts cold instead
                pass
        if spare is not None:
            spare.discard()
        return Worker.start(
            self.settings,
            spec,
            log_path=log_path,
            env=self.env,
            own_group=True,
            die_with_parent=True,
            argv=argv,
        )

    def close(self) -> None:
        """End the idle spares (they also die with this process, by the parent-death signal)."""
        for spare in self._idle.values():
            spare.discard()
        self._idle.clear()

    def _start(self, toolchain: str) -> _Spare:
        self.spool.mkdir(parents=True, exist_ok=True)
        log = self.spool / f"{toolchain}-{os.getpid()}.log"
        env = worker_env(self.settings, self.env)
        command = worker_argv(self.settings, log, ["warm", toolchain, "--log", str(log)])
        progress = log.with_suffix(".progress")
        process = spawn(
            command, log, progress, env, own_group=True, die_with_parent=True, stdin=subprocess.PIPE
        )
        return _Spare(process, env, log, progress)
