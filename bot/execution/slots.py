"""Where builds run on this machine: one slot per local GPU, or one CPU slot on a machine without one.

A CPU build shares the machine's cores with the bot itself, whose webhook acknowledgements must stay fast
(the Hub gives up on a slow receiver): the CPU slot's worker runs at a lower scheduling priority
(`CPU_NICE`) and with one core fewer than the machine has for torch's threads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from bot.host.gpus import local_gpus

CPU_NICE = 10


@dataclass
class Slot:
    """One build at a time: on a GPU (`gpu` is its index; the worker sees only it) or on the CPU."""

    name: str
    gpu: int | None = None

    @property
    def env(self) -> dict[str, str]:
        """What the worker's environment adds: `CUDA_VISIBLE_DEVICES` set to this slot's GPU (or none), and
        on the CPU the thread counts of torch's pools (`OMP_NUM_THREADS`, `MKL_NUM_THREADS`)."""
        if self.gpu is not None:
            return {"CUDA_VISIBLE_DEVICES": str(self.gpu)}
        threads = str(cpu_threads())
        return {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}

    @property
    def nice(self) -> int:
        """The worker's nice value: lower priority than the bot on the CPU slot, none on a GPU."""
        return 0 if self.gpu is not None else CPU_NICE


def cpu_threads() -> int:
    """The cores this process may use, less one left to the bot (at least one)."""
    return max(1, len(os.sched_getaffinity(0)) - 1)


def default_slots() -> list[Slot]:
    """One slot per local GPU, or a single CPU slot on a machine without one."""
    gpus = local_gpus()
    return [Slot(f"gpu{g.index}", g.index) for g in gpus] or [Slot("cpu")]
