"""engines: TensorRT-LLM engines, one per target SM that this worker's GPU is, when trtllm-build exists.

An engine runs only on the compute capability it was built on and its config records no SM, so the
builder builds only for the SM of the GPU it runs on and labels the folder itself
(``sm90_trt-llm-1.2.0rc5_cuda13.0``, the seed's label). Every other case is recorded as "not built" with
its reason: no TensorRT-LLM, a release after 1.2 (no trtllm-build; its PyTorch backend serves the
checkpoint directly), no GPU, another SM, or GPTQ (which needs TensorRT-LLM's convert_checkpoint.py).
trtllm-build is run with an argument list, never through a shell.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from builders.artifacts import ENGINES, LEGACY, hash_folder
from builders.failures import BuildFailure
from builders.spec import BuildSpec, Device, EngineSettings, installed_toolchain


def probe() -> tuple[str | None, str | None, str]:
    """(version, trtllm-build path, reason it cannot build) for the TensorRT-LLM on this worker."""
    version = installed_toolchain().get("tensorrt_llm")
    if version is None:
        return None, None, "TensorRT-LLM is not installed on this worker"
    from packaging.version import InvalidVersion, Version

    try:
        too_new = Version(version).release[:2] > (1, 2)
    except InvalidVersion:
        too_new = False
    if too_new:
        return (
            version,
            None,
            (
                f"TensorRT-LLM {version} has no trtllm-build (its TensorRT engine backend ended with 1.2); "
                "its PyTorch backend serves the checkpoint at the repo root directly with LLM(model=...)"
            ),
        )
    tool = shutil.which("trtllm-build")
    if tool is None:
        return version, None, f"TensorRT-LLM {version} is installed but trtllm-build is not on PATH"
    return version, tool, ""


def not_built_reason(spec: BuildSpec, device: Device, sm: int) -> str:
    """Why no engine for ``sm`` can be built here; empty when it can."""
    if spec.format == "gptq":
        return (
            "GPTQ engines need TensorRT-LLM's convert_checkpoint.py (int4_gptq), which this builder "
            "does not run; the GPTQ checkpoint is served by vLLM or TGI"
        )
    _, tool, reason = probe()
    if tool is None:
        return reason
    if device.kind != "cuda":
        return "no CUDA GPU on this worker"
    if device.sm != sm:
        return f"this worker's GPU is sm{device.sm} ({device.name}); an sm{sm} engine needs an sm{sm} GPU"
    return ""


def engines(ctx: Any) -> dict[str, Any]:
    """The engines stage: build what can be built here, record every SM either way."""
    spec, device = ctx.spec, ctx.device
    shutil.rmtree(ctx.out_dir / ENGINES, ignore_errors=True)  # an earlier run's: rebuilt or not, below
    if ctx.details("export").get("legacy_checkpoint") is None:
        shutil.rmtree(ctx.out_dir / LEGACY, ignore_errors=True)
    if not spec.target_sms:
        return {"engines": [], "artifacts": [], "skipped": "no target SMs in the spec"}
    records: list[dict[str, Any]] = []
    artifacts: list[dict[str, Any]] = []
    legacy: Path | None = None
    for index, sm in enumerate(spec.target_sms):
        ctx.progress(index / max(len(spec.target_sms), 1), f"engine for sm{sm}")
        reason = not_built_reason(spec, device, sm)
        if reason:
            records.append({"sm": sm, "status": "not_built", "reason": reason})
            continue
        if legacy is None:
            legacy = _legacy_checkpoint(ctx)
            if ctx.details("export").get("legacy_checkpoint") is None:  # made here: publish it too
                artifacts += hash_folder(ctx.out_dir, LEGACY)
        record = _build(ctx, sm, legacy)
        records.append(record)
        if record["status"] == "built":
            artifacts += hash_folder(ctx.out_dir, record["path"], engine=True)
    missing = [r for r in records if r["status"] != "built"]
    if spec.engines_required and missing:
        raise BuildFailure(
            "engine_not_built",
            "; ".join(f"sm{r['sm']}: {r['reason']}" for r in missing),
            details={"engines": records, "artifacts": artifacts},
        )
    failed = [r for r in records if r["status"] == "failed"]
    if failed:
        raise BuildFailure(
            "engine_build_failed",
            "; ".join(f"sm{r['sm']}: {r['reason']}" for r in failed),
            details={"engines": records, "artifacts": artifacts},
        )
    return {"engines": records, "artifacts": artifacts}


def _legacy_checkpoint(ctx: Any) -> Path:
    """The legacy checkpoint trtllm-build reads: int8_sq's export, else one exported now."""
    legacy = ctx.details("export").get("legacy_checkpoint")
    if legacy is not None:
        return Path(legacy)
    from builders.modelopt_quant import export_legacy

    return export_legacy(ctx)[0]


def _build(ctx: Any, sm: int, legacy: Path) -> dict[str, Any]:
    return build_engine(legacy, ctx.out_dir, sm, ctx.spec.engine)


def build_engine(legacy: Path, out_dir: Path, sm: int, settings: EngineSettings) -> dict[str, Any]:
    """Run trtllm-build on a legacy checkpoint into `out_dir/trt-llm/engines/<label>`; the engine's record.

    Also what an engine task of a remote worker runs on the checkpoint it downloaded (`builders.engine_step`).
    """
    import torch

    version, tool, _ = probe()
    assert tool is not None, "build_engine is only called where not_built_reason found trtllm-build"
    cuda = torch.version.cuda
    label = f"sm{sm}_trt-llm-{version}_cuda{cuda}"
    final = out_dir / ENGINES / label
    partial = final.with_name(f".{label}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    args = [
        tool,
        "--checkpoint_dir",
        str(legacy),
        "--output_dir",
        str(partial),
        "--max_batch_size",
        str(settings.max_batch_size),
        "--max_input_len",
        str(settings.max_input_len),
        "--max_seq_len",
        str(settings.seq_len),
        "--gemm_plugin",
        settings.gemm_plugin,
        "--kv_cache_type",
        settings.kv_cache_type,
        "--workers",
        "1",
    ]
    started = time.monotonic()
    base = {"sm": sm, "tensorrt_llm": version, "cuda": cuda}
    try:
        done = subprocess.run(
            args, stdout=sys.stderr, stderr=sys.stderr, timeout=settings.timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        return base | {"status": "failed", "reason": f"trtllm-build ran over {settings.timeout_s} s"}
    seconds = round(time.monotonic() - started, 3)
    if done.returncode != 0 or not list(partial.glob("rank*.engine")):
        return base | {
            "status": "failed",
            "reason": f"trtllm-build exited {done.returncode} without rank*.engine",
            "build_s": seconds,
        }
    shutil.rmtree(final, ignore_errors=True)
    partial.replace(final)
    return base | {"status": "built", "path": (ENGINES / label).as_posix(), "build_s": seconds}
