"""What the stages of one build share: the spec, the records of finished stages, and the model in memory.

A rerun after a crash starts with an empty process, so the model is never assumed to be in memory:
stages ask for it (`base_model`, `tokenizer`), and it is loaded from the fetched snapshot when it is not.
A quantized ModelOpt model is rebuilt from the state saved by the quantize stage (see modelopt_quant).

Two environment variables exist for tests of crash recovery and OOM handling, and do nothing otherwise:
``QUANTBOT_BUILDERS_HOLD=<stage>`` makes the worker stop and wait inside that stage (so a test can kill it
mid-stage), and ``QUANTBOT_BUILDERS_FAULT=cuda_oom|cuda_oom_always`` raises a CUDA out-of-memory error in
the first calibration batch of the first attempt (or of every attempt).
"""

from __future__ import annotations

import gc
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builders.failures import BuildFailure
from builders.hfmodel import load_model, load_tokenizer
from builders.progress import Reporter
from builders.spec import BuildSpec, Device, StageRecord

HOLD_ENV = "QUANTBOT_BUILDERS_HOLD"
FAULT_ENV = "QUANTBOT_BUILDERS_FAULT"


@dataclass
class BuildContext:
    spec: BuildSpec
    reporter: Reporter
    device: Device
    records: dict[str, StageRecord] = field(default_factory=dict)
    stage: str = "fetch"
    model: Any = None
    model_kind: str | None = None  # "base", "quantized" or "gptq" (GPTQModel's) while `model` holds one
    _tokenizer: Any = None
    _held: bool = False
    _frozen: bool = False

    # -- places

    @property
    def work_dir(self) -> Path:
        return Path(self.spec.work_dir)

    @property
    def out_dir(self) -> Path:
        return Path(self.spec.output_dir)

    @property
    def torch_device(self) -> str:
        return "cuda" if self.device.kind == "cuda" else "cpu"

    def details(self, stage: str) -> dict[str, Any]:
        record = self.records.get(stage)
        return record.details if record else {}

    @property
    def snapshot_dir(self) -> Path:
        return Path(self.details("fetch")["snapshot_dir"])

    # -- progress and test hooks

    def progress(self, fraction: float, message: str = "", **counts: int) -> None:
        """Report the stage's progress; `step` and `steps` count calibration work (batches through
        layers), from which a reader can tell the rate and the time left."""
        self.reporter.emit(self.stage, fraction, message, **counts)

    def hold(self) -> None:
        """Wait here forever when a test asked to hold this stage (it will kill the worker)."""
        if os.environ.get(HOLD_ENV) == self.stage and not self._held:
            self._held = True
            self.progress(0.5, f"holding ({HOLD_ENV})")
            while True:
                time.sleep(3600)

    def inject_oom(self, attempt: int) -> None:
        fault = os.environ.get(FAULT_ENV, "")
        if fault == "cuda_oom_always" or (fault == "cuda_oom" and attempt == 0):
            import torch

            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (injected by {FAULT_ENV}={fault})")

    # -- the model

    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.snapshot_dir, self.spec)
        return self._tokenizer

    def base_model(self, fresh: bool = False) -> Any:
        """The upstream model as loaded from the snapshot (reloaded when asked fresh or not in memory)."""
        if fresh or self.model_kind != "base":
            if self.model is not None:
                self.release_model()
            self.before_first_model()
            self.model = load_model(self.snapshot_dir, self.spec, self.torch_device)
            self.model_kind = "base"
        return self.model

    def before_first_model(self) -> None:
        """Leave what exists before the first model (the toolchain's modules, classes and functions, alive
        as long as the process) out of garbage collection: `release_model`'s collection then walks what the
        build made, not the hundreds of thousands of objects the imports made (a second on a busy CPU)."""
        if not self._frozen:
            gc.freeze()
            self._frozen = True

    def keep_model(self, model: Any, kind: str) -> None:
        self.model, self.model_kind = model, kind

    def release_model(self) -> None:
        self.model, self.model_kind = None, None
        gc.collect()
        if self.device.kind == "cuda":
            import torch

            torch.cuda.empty_cache()


def is_cuda_oom(error: BaseException) -> bool:
    import torch

    return isinstance(error, torch.cuda.OutOfMemoryError) or "CUDA out of memory" in str(error)


def with_oom_retry(ctx: BuildContext, batch_size: int, attempt_fn: Any) -> tuple[Any, int, int]:
    """Run ``attempt_fn(batch_size, attempt)``; on CUDA OOM retry once with half the batch, then fail.

    Returns (result, batch size used, retries). The attempt function must start from a fresh model when
    ``attempt > 0``: a calibration cut short leaves a model half converted.
    """
    try:
        return attempt_fn(batch_size, 0), batch_size, 0
    except Exception as e:
        if not is_cuda_oom(e):
            raise
        if batch_size == 1:
            raise BuildFailure(
                "cuda_oom", f"CUDA out of memory during calibration at batch size 1: {e}"
            ) from e
        smaller = batch_size // 2
        ctx.progress(0.05, f"CUDA out of memory at calibration batch {batch_size}; retrying with {smaller}")
        ctx.release_model()
    try:
        return attempt_fn(smaller, 1), smaller, 1
    except Exception as e:
        if is_cuda_oom(e):
            raise BuildFailure(
                "cuda_oom",
                f"CUDA out of memory in calibration at batch size {batch_size} and again at {smaller}: {e}",
            ) from e
        raise
