"""Where builds run on this machine: one slot per local GPU, or one CPU slot on a machine without one."""

from __future__ import annotations

from dataclasses import dataclass

from bot.eligibility.targets import local_gpus


@dataclass
class Slot:
    """One build at a time: on a GPU (`gpu` is its index; the worker sees only it) or on the CPU."""

    name: str
    gpu: int | None = None

    @property
    def env(self) -> dict[str, str]:
        """What the worker's environment adds: `CUDA_VISIBLE_DEVICES` set to this slot's GPU (or none)."""
        return {"CUDA_VISIBLE_DEVICES": "" if self.gpu is None else str(self.gpu)}


def default_slots() -> list[Slot]:
    """One slot per local GPU, or a single CPU slot on a machine without one."""
    gpus = local_gpus()
    return [Slot(f"gpu{g.index}", g.index) for g in gpus] or [Slot("cpu")]
