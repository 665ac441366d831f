"""The GPU architectures (SMs) to plan builds for: local GPUs, remote workers' SMs, or `--sm`.

The local GPUs are the caller's to find (`bot.host.gpus`, NVML), so planning stays free of the machine it
runs on. An SM maps to a GPU family and a row of TensorRT-LLM's hardware matrix
through `trtllm_hardware.yaml` (80/86/87 Ampere, 89 Ada Lovelace, 90 Hopper, 100/103 and 120/121 Blackwell).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from bot.eligibility.matrices import DATA_DIR, Matrices, load_matrices, read_yaml
from bot.errors import UnknownSM, UsageError

GIB = 1024**3


@dataclass(frozen=True)
class GPU:
    """One local GPU as NVML reports it."""

    index: int
    name: str
    sm: int
    memory_bytes: int


@dataclass(frozen=True)
class Target:
    """One SM to build for; memory is the largest local GPU of that SM, else the configured figure."""

    sm: int
    family: str
    hardware_row: str
    gpus: tuple[GPU, ...] = ()
    memory_bytes: int | None = None
    memory_source: str | None = None  # "local GPU", "configured" or None (unknown)

    @property
    def gpu_name(self) -> str | None:
        return self.gpus[0].name if self.gpus else None


@dataclass(frozen=True)
class Targets:
    """The targets, and what the caller should be told about how they were chosen."""

    targets: tuple[Target, ...]
    notes: tuple[str, ...] = field(default=())


GPU_SMS_FILE = DATA_DIR / "gpu_sms.yaml"
_GPU_NOISE = re.compile(r"\b(nvidia|geforce|tesla)\b|[\s_-]+", re.IGNORECASE)


def _gpu_key(name: str) -> str:
    return _GPU_NOISE.sub("", name).lower()


@functools.cache
def _gpu_sms() -> dict[str, int]:
    data = read_yaml(GPU_SMS_FILE)
    return {_gpu_key(str(name)): int(sm) for name, sm in (data.get("gpus") or {}).items()}


def gpu_sm(name: str) -> int | None:
    """The SM of an NVIDIA GPU named as people write it (`L4`, `NVIDIA GeForce RTX 4090`, `h100`); None when
    `gpu_sms.yaml` does not know it."""
    return _gpu_sms().get(_gpu_key(name))


def parse_sms(text: str) -> list[int]:
    """`"90,89"` or `"sm90, sm_89"` → [90, 89]; anything else is a UsageError."""
    sms = []
    for item in (part.strip() for part in text.split(",")):
        match = re.fullmatch(r"(?:sm_?)?(\d{2,3})", item, flags=re.IGNORECASE)
        if not match:
            raise UsageError(f"--sm: {item!r} is not an SM number such as 90 (comma-separated: 90,89)")
        sms.append(int(match.group(1)))
    return list(dict.fromkeys(sms))


def target_for(
    sm: int,
    gpus: Iterable[GPU] = (),
    memory_gib: Mapping[int, float] | None = None,
    matrices: Matrices | None = None,
) -> Target:
    """The Target for one SM: its family and hardware row, and the memory of the local GPUs of that SM."""
    m = matrices or load_matrices()
    info = m.sms.get(sm)
    if info is None:
        known = ", ".join(str(s) for s in sorted(m.sms))
        raise UnknownSM(f"unknown SM {sm}: the hardware matrix places only {known} in a GPU family")
    mine = tuple(g for g in gpus if g.sm == sm)
    if mine:
        return Target(sm, info.family, info.row, mine, max(g.memory_bytes for g in mine), "local GPU")
    configured = (memory_gib or {}).get(sm)
    if configured:
        return Target(sm, info.family, info.row, (), int(configured * GIB), "configured")
    return Target(sm, info.family, info.row)


def resolve_targets(
    sms: list[int] | None,
    *,
    remote_sms: Iterable[int] = (),
    default_sms: Iterable[int] = (),
    memory_gib: Mapping[int, float] | None = None,
    gpus: Iterable[GPU] = (),
    matrices: Matrices | None = None,
) -> Targets:
    """`sms` when given; else the SMs of `gpus` (this machine's) plus `remote_sms`; else `default_sms`, saying
    so."""
    m = matrices or load_matrices()
    notes: list[str] = []
    usable = []
    for gpu in gpus:
        if gpu.sm in m.sms:
            usable.append(gpu)
        else:
            notes.append(
                f"GPU {gpu.index} ({gpu.name}, sm{gpu.sm}) is in no family of the hardware matrix; ignored"
            )
    if sms:
        chosen = list(sms)
    else:
        chosen = list(dict.fromkeys([*sorted({g.sm for g in usable}), *remote_sms]))
        if not chosen:
            chosen = list(default_sms)
            listed = ", ".join(str(s) for s in chosen)
            notes.append(f"no GPU found and no --sm given: planning for the configured SMs {listed}")
    return Targets(tuple(target_for(sm, usable, memory_gib, m) for sm in chosen), tuple(notes))
