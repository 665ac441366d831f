"""The TensorRT-LLM card's context: the seed example's parameters, from the manifest and upstream facts.

A value the manifest does not hold is None, and the template leaves its row out (DESIGN.md, decision 8).
Where the release runs comes from the runtime table (bot/publishing/gpus.py); engine text appears only where
an engine path exists: the release holds TensorRT-LLM's legacy checkpoint, which `trtllm-build` reads.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from bot.eligibility.matrices import RuntimeCell, load_matrices, load_runtimes
from bot.naming import display_format
from bot.publishing import figures
from bot.publishing.card_sections import eval_metadata, shared_sections
from bot.publishing.gpus import engine_cell, examples
from bot.publishing.upstream import Upstream
from builders.spec import AWQ_FORMATS, MANIFEST_NAME, Manifest

LEGACY_FOLDER = "trt-llm/checkpoints"


def trtllm_context(manifest: Manifest, upstream: Upstream, *, repo_id: str) -> dict[str, Any]:
    """Every value the TensorRT-LLM card shows (the seed's parameters), from the manifest and upstream."""
    spec, quant = manifest.require_spec(), manifest.quantization
    calib = quant.calibration if quant else None
    fmt = spec.format
    upper = display_format(fmt)
    bits = figures.bits(manifest)
    built = [e for e in manifest.engines if e.status == "built" and e.path]
    device = manifest.device
    gpu = device if device is not None and device.kind == "cuda" else None
    engine_sms = sorted({e.sm for e in built})
    engine_path = any(a.path.startswith(f"{LEGACY_FOLDER}/") for a in manifest.artifacts)
    cell = engine_cell(fmt) if engine_path else None
    kv_cache = _kv_cache(manifest)
    legacy_only = bool(quant and quant.checkpoint_kind == "trtllm_legacy")
    metadata = {
        **upstream.licence_metadata(),
        "base_model": upstream.repo_id,
        "base_model_relation": "quantized",
        "tags": ["tensorrt-llm", "quantized", fmt] + ([f"{bits}-bit"] if bits else []),
        **({"language": upstream.language} if upstream.language else {}),
        **({"pipeline_tag": upstream.pipeline_tag} if upstream.pipeline_tag else {}),
        **upstream.gate_metadata(),
        **eval_metadata(manifest, repo_id),
    }
    not_built = [e for e in manifest.engines if e.status != "built"]
    return {
        **shared_sections(manifest, upstream, repo_id=repo_id, kv_cache=kv_cache),
        "metadata": metadata,
        "legacy_checkpoint": LEGACY_FOLDER if legacy_only else None,
        "quant_algo": quant.quant_algo if quant else None,
        "model_name": upstream.repo_id,
        "quant_method_upper": upper,
        "source_model_link": upstream.url,
        "w_bit": bits,
        "kv_cache_dtype": kv_cache,
        "kv_cache_type": spec.engine.kv_cache_type if built else None,
        "kv_reuse": None,  # a runtime option of TensorRT-LLM's executor; the build does not record it
        "group_size": quant.group_size if quant else None,
        "tensorrt_llm_version": manifest.toolchain.tensorrt_llm if manifest.toolchain else None,
        "modelopt_version": quant.producer_version if quant and quant.producer == "modelopt" else None,
        "max_batch_size": spec.engine.max_batch_size if built else None,
        "max_input_len": spec.engine.max_input_len if built else None,
        "max_output_len": spec.engine.max_output_len if built else None,
        "sm_arch": ", ".join(f"sm{s}" for s in engine_sms) or None,
        "gpu_name": gpu.name if gpu else None,
        "quantized_on": f"CPU ({device.name})" if device is not None and gpu is None else None,
        "cuda_toolkit": _cuda(manifest, built),
        "build_time": figures.duration(manifest.wall_s),
        "generated_at": figures.timestamp(manifest),
        "engines": [{"label": PurePosixPath(e.path).name} for e in built if e.path],
        "engine_note": _engine_note(not_built, fmt, legacy_only=legacy_only) if not built else None,
        "artifact_sizes": _artifact_sizes(manifest),
        "calib_dataset": figures.dataset_label(calib.dataset) if calib else None,
        "calib_size": calib.samples if calib else None,
        "calib_note": figures.calibration_note(calib),
        "calib_seqlen": calib.seq_len if calib else None,
        "awq_block_size": ((calib.awq_block_size if calib else None) or spec.recipe.awq_block_size)
        if fmt in AWQ_FORMATS
        else None,
        "calib_batch_size": calib.batch_size if calib else None,
        "validation": figures.validation_table(manifest),
        "engine_gpu": _engine_gpu(engine_sms, gpu.name if gpu else None),
        "example_gpus": examples(cell) if cell else None,
        "quant_portability_note": _portability_note(upper, engine_sms, cell),
        "manifest_file": MANIFEST_NAME,
        "license_display": upstream.licence_display,
        "license_link": upstream.licence_url,
        "gated_note": upstream.gated_note(),
    }


def _kv_cache(manifest: Manifest) -> str | None:
    quant = manifest.quantization
    if quant is None:
        return None
    if quant.kv_cache_quant_algo:
        return quant.kv_cache_quant_algo.lower()
    return "not quantized (model dtype)" if manifest.require_spec().recipe.kv_cache == "none" else None


def _cuda(manifest: Manifest, built: list[Any]) -> str | None:
    versions = sorted({e.cuda for e in built if e.cuda})
    if versions:
        return ", ".join(versions)
    return manifest.toolchain.cuda if manifest.toolchain else None


def _engine_gpu(engine_sms: list[int], gpu_name: str | None) -> str | None:
    """`sm90 only (built on NVIDIA H100 NVL, Hopper)`: an engine runs on the SM it was built on only."""
    if not engine_sms:
        return None
    known = load_matrices().sms
    families = ", ".join(dict.fromkeys(known[s].family for s in engine_sms if s in known))
    built_on = ", ".join(x for x in (f"built on {gpu_name}" if gpu_name else "", families) if x)
    return f"{', '.join(f'sm{s}' for s in engine_sms)} only" + (f" ({built_on})" if built_on else "")


def _portability_note(upper: str, engine_sms: list[int], cell: RuntimeCell | None) -> str | None:
    """Engine advice, only where an engine path exists (`cell`: the SMs a TensorRT engine of the format runs
    on). A unified checkpoint without one gets none: its runtimes load it as it is (see *Runs with*)."""
    if cell is None:
        return None
    shown = examples(cell)
    where = f"{cell.sm_text}; e.g. {shown}" if shown else cell.sm_text
    if engine_sms:
        return (
            f"{upper} engines run only on the SM they were built for: for another GPU ({where}), build "
            f"one from `{LEGACY_FOLDER}/` with `trtllm-build` (TensorRT-LLM ≤ 1.2), or reuse a prebuilt "
            "engine if it matches your GPU."
        )
    return (
        f"No engine is included: build one with `trtllm-build` on the GPU that will run it ({where}); "
        "see *Usage*."
    )


def _engine_note(not_built: list[Any], fmt: str, *, legacy_only: bool) -> str:
    """Why there is no engine, and what runs the release instead: only runtimes that load the format."""
    reasons = sorted({e.reason for e in not_built if e.reason})
    why = f" ({'; '.join(reasons)})" if reasons else ""
    names = [r.name for r, _ in load_runtimes().loaders(fmt)]
    runs = f" Run it with {' or '.join(names)} (see *Usage*)." if names else ""
    only = (
        f"the repo holds TensorRT-LLM's legacy checkpoint only, in `{LEGACY_FOLDER}/`"
        if legacy_only
        else "the repo holds the quantized checkpoint only"
    )
    return f"No TensorRT engine was built for this release{why}: {only}.{runs}"


def _artifact_sizes(manifest: Manifest) -> list[dict[str, Any]]:
    return [
        {
            "path": f"{folder}/" if folder else "(repo root)",
            "files": len(items),
            "size": figures.human_size(sum(a.size for a in items)),
        }
        for folder, items in figures.artifact_folders(manifest).items()
    ]
