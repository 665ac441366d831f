"""Which GPUs a release runs on, as a card says it: per runtime, from the runtime table (runtimes.yaml).

A card never states a format-wide minimum ("Compute Capability ≥ 8.0"): INT4-AWQ runs on sm80–sm90 under
TensorRT-LLM and on no Blackwell GPU, FP8 on sm80+ under vLLM but sm89+ under SGLang. Each line, and each GPU
it names as an example, comes from one runtime's cell.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.eligibility.matrices import load_matrices, load_runtimes
from bot.eligibility.matrices.runtimes import RuntimeCell

# GPUs a card may name as examples, by SM (the seed's list, plus T4 for the runtimes that reach sm75).
EXAMPLE_GPUS = (
    ("T4", 75),
    ("A100", 80),
    ("L40S", 89),
    ("RTX 4090", 89),
    ("H100", 90),
    ("H200", 90),
    ("B200", 100),
)
# Families below the SMs quantbot builds for (those come from the hardware matrix's SM table).
_OLDER_FAMILIES = {60: "Pascal", 70: "Volta", 75: "Turing"}
# The runtimes that turn a checkpoint into a TensorRT engine, in the order an engine path is looked for.
_ENGINE_RUNTIMES = ("trtllm_build", "trtllm_pytorch")


@dataclass(frozen=True)
class GpuLine:
    """One runtime's GPUs for a format: `sm80, sm86: Ampere GPUs (e.g. A100)`."""

    runtime: str
    text: str


def _families(cell: RuntimeCell) -> list[str]:
    families = _OLDER_FAMILIES | {sm: info.family for sm, info in load_matrices().sms.items()}
    return list(dict.fromkeys(families[sm] for sm in sorted(families) if cell.runs_on(sm)))


def examples(cell: RuntimeCell) -> str | None:
    """`A100, H100`: the example GPUs whose SM the cell runs on."""
    return ", ".join(name for name, sm in EXAMPLE_GPUS if cell.runs_on(sm)) or None


def describe(cell: RuntimeCell) -> str:
    """`sm80, sm86, sm87, sm89, sm90: Ampere, Ada Lovelace and Hopper GPUs (e.g. A100, L40S, H100)`."""
    if not cell.min_sm and not cell.sms:
        return cell.sm_text
    families = _families(cell)
    named = f"{', '.join(families[:-1])} and {families[-1]}" if len(families) > 1 else "".join(families)
    shown = examples(cell)
    return f"{cell.sm_text}: {named} GPUs" + (f" (e.g. {shown})" if shown else "")


def gpu_lines(fmt: str) -> list[GpuLine]:
    """Where each runtime that loads `fmt` runs it, in the table's order."""
    return [GpuLine(runtime.name, describe(cell)) for runtime, cell in load_runtimes().loaders(fmt)]


def engine_cell(fmt: str) -> RuntimeCell | None:
    """The cell that says on which SMs a TensorRT engine of `fmt` runs: trtllm-build's where it loads the
    format, else the PyTorch backend's (both follow TensorRT-LLM's kernels and hardware matrix)."""
    table = load_runtimes()
    cells = [table.runtime(r).cells[fmt] for r in _ENGINE_RUNTIMES]
    return next((c for c in cells if c.loads), None)
