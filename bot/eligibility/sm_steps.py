"""What each SM's task of a job does for a format: build an engine, or prove the release in a serving check.

TensorRT-LLM ≤ 1.2 builds an engine per SM (`trtllm-build`, where the runtime table's `trtllm_build` loads the
format on that SM). Current runtimes build none (TensorRT-LLM ≥ 1.3 is its PyTorch backend only, and vLLM and
SGLang never did): for them the SM's task loads the release by repo id and generates from the card's prompt
(builders/serving_check.py), in the runtimes of the table that load the format there. `quantbot plan` and
`/formats` say which, per SM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.eligibility.matrices import load_runtimes
from bot.eligibility.matrices.runtimes import Runtime, RuntimeCell
from builders.spec import SERVING_RUNTIMES

ENGINE_RUNTIME = "trtllm_build"
# How the plan names the runtimes it checks where the table's name says less (the version that has no engine).
_SHORT = {"trtllm_pytorch": "TensorRT-LLM ≥ 1.3"}


@dataclass(frozen=True)
class SmStep:
    """One format on one SM: whether an engine is built there, and the runtimes its serving check loads."""

    sm: int
    engine: bool
    serving: tuple[str, ...]

    def describe(self) -> str:
        """`serving check (vLLM, SGLang, TensorRT-LLM ≥ 1.3)`, `engine (trtllm-build, TensorRT-LLM ≤ 1.2)`."""
        parts = []
        if self.engine:
            parts.append("engine (trtllm-build, on a worker with TensorRT-LLM ≤ 1.2)")
        if self.serving:
            parts.append(f"serving check ({', '.join(self.serving)})")
        return " + ".join(parts) or "neither: no runtime of the table loads it on this SM"

    def to_json(self) -> dict[str, Any]:
        return {"engine": self.engine, "serving_check": list(self.serving), "text": self.describe()}


def sm_loaders(fmt: str, sm: int) -> list[tuple[Runtime, RuntimeCell]]:
    """The runtimes of the table that load `fmt` on `sm`, with their cells, in the table's order."""
    return [(runtime, cell) for runtime, cell in load_runtimes().loaders(fmt) if cell.runs_on(sm)]


def serving_loaders(fmt: str, sm: int) -> list[tuple[Runtime, RuntimeCell]]:
    """Those of them that the serving check drives: what `plan` names and what each SM's check loads."""
    return [(runtime, cell) for runtime, cell in sm_loaders(fmt, sm) if runtime.id in SERVING_RUNTIMES]


def sm_step(fmt: str, sm: int) -> SmStep:
    """What the per-SM task of a `fmt` build does on `sm`, from the runtime table."""
    return SmStep(
        sm=sm,
        engine=any(runtime.id == ENGINE_RUNTIME for runtime, _ in sm_loaders(fmt, sm)),
        serving=tuple(_SHORT.get(r.id, r.name) for r, _ in serving_loaders(fmt, sm)),
    )
