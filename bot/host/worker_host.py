"""A GPU host's build workers (`quantbot worker`): one Celery worker per GPU, each on its SM's queue.

One build at a time per GPU: each GPU gets a Celery worker of its own (concurrency 1, prefork, so the
worker keeps answering the broker — revokes, heartbeats — while its one pool process runs the task), whose
builds see only that GPU through `CUDA_VISIBLE_DEVICES`. The SM is read from the GPU through NVML, or given
with `--sm` (a host without a GPU must say which SM its builds stand for: engines there are recorded "not
built", honestly). Each worker listens on its SM's queue (`sm90`) and on `quantize`, or on `--queues`.

A worker needs the broker URL and a Hub token, nothing else of the bot: it never opens the bot's database.
With several GPUs this process supervises one child process per GPU; the children die with it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass

from bot.errors import UsageError
from bot.host.celery_app import QUANTIZE_QUEUE, make_app, sm_queue
from bot.host.gpus import local_gpus
from bot.host.tasks import Place, cool_down, register, warm_up
from bot.launcher.launch import set_parent_death_signal
from bot.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Seat:
    """One build at a time: a GPU (its index) of an SM, or the CPU standing for an SM given by `--sm`."""

    sm: int
    gpu: int | None = None

    @property
    def slot(self) -> str:
        return "cpu" if self.gpu is None else f"gpu{self.gpu}"

    def queues(self, chosen: list[str] | None = None) -> list[str]:
        return chosen or [sm_queue(self.sm), QUANTIZE_QUEUE]

    def node_name(self) -> str:
        """Unique per process, so two workers of one host (or a restarted one) never share a name."""
        return f"sm{self.sm}-{self.slot}-{os.getpid()}@{socket.gethostname()}"


def seats(sm: int | None, gpus: list[int] | None) -> list[Seat]:
    """The GPUs to build on (all, or `gpus`), or the CPU as `sm`; a clear error for what cannot be."""
    found = {g.index: g for g in local_gpus()}
    if not found:
        if gpus:
            raise UsageError(f"--gpus {','.join(map(str, gpus))}: NVML finds no NVIDIA GPU on this host")
        if sm is None:
            raise UsageError(
                "NVML finds no NVIDIA GPU on this host: say which SM its builds stand for with --sm N "
                "(its engines are then recorded as not built, for want of a GPU)"
            )
        return [Seat(sm)]
    missing = sorted(set(gpus or []) - set(found))
    if missing:
        raise UsageError(f"no GPU {missing[0]} on this host (it has {', '.join(map(str, sorted(found)))})")
    chosen = [found[i] for i in (gpus or sorted(found))]
    for gpu in chosen:
        if sm is not None and gpu.sm != sm:
            raise UsageError(f"GPU {gpu.index} ({gpu.name}) is sm{gpu.sm}, not sm{sm}: leave out --sm")
    return [Seat(gpu.sm, gpu.index) for gpu in chosen]


def run_worker(settings: Settings, seat: Seat, queues: list[str] | None, loglevel: str = "INFO") -> None:
    """A Celery worker for one seat, in this process, until SIGTERM / SIGINT (warm shutdown)."""
    from celery.signals import task_postrun, worker_process_init, worker_process_shutdown

    if seat.gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(seat.gpu)
    app = make_app(settings)
    name = seat.node_name()
    register(app, Place(settings, name, {"CUDA_VISIBLE_DEVICES": "" if seat.gpu is None else str(seat.gpu)}))
    worker_process_init.connect(_pool_process_init, weak=False)
    task_postrun.connect(_after_task, weak=False)
    worker_process_shutdown.connect(_pool_process_end, weak=False)
    worker = app.Worker(
        hostname=name,
        queues=seat.queues(queues),
        concurrency=1,
        pool="prefork",
        loglevel=loglevel,
        without_mingle=True,
        without_gossip=True,
        optimization="fair",
    )
    worker.start()


def _pool_process_init(**_: object) -> None:
    """The pool process dies with its worker, and stops its build on SIGTERM (a revoke that terminates);
    its warm spares start importing now, before the first task comes."""
    set_parent_death_signal()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    warm_up()


def _after_task(**_: object) -> None:
    """A task ended (its upload done): the spare it used is replaced now, while the slot is idle."""
    warm_up()


def _pool_process_end(**_: object) -> None:
    cool_down()


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds the task, whose `finally` stops its build process group


def run_host(seats_: list[Seat], queues: list[str] | None, argv_tail: list[str]) -> int:
    """Several GPUs: one `quantbot worker --gpus N` child per GPU; they end with this process."""
    children = []
    for seat in seats_:
        argv = [sys.executable, "-c", "from bot.cli import main; main()", "worker", "--gpus", str(seat.gpu)]
        argv += (["--queues", ",".join(queues)] if queues else []) + argv_tail
        children.append(subprocess.Popen(argv, preexec_fn=set_parent_death_signal))
        log.info("worker for GPU %s (sm%d) started, pid %d", seat.gpu, seat.sm, children[-1].pid)

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    codes = [child.wait() for child in children]
    return max((abs(c) for c in codes), default=0)
