"""The TensorRT-LLM card's context: the seed example's parameters, from the manifest and upstream facts.

A value the manifest does not hold is None, and the template leaves its row out (DESIGN.md, decision 8).
Where the checkpoint runs comes from TensorRT-LLM's hardware matrix (bot/eligibility/matrices).
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from bot.eligibility.matrices import load_matrices, load_runtimes
from bot.publishing import figures
from bot.publishing.card_sections import eval_metadata, example_gpus, shared_sections
from bot.publishing.naming import display_format
from bot.publishing.upstream import Upstream
from builders.spec import AWQ_FORMATS, MANIFEST_NAME, Manifest


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
    matrices = load_matrices()
    supported = _supported_sms(fmt)
    engine_sms = sorted({e.sm for e in built})
    min_sm = min(engine_sms) if engine_sms else (min(supported) if supported else None)
    family = matrices.sms[min_sm].family if min_sm is not None and min_sm in matrices.sms else None
    gpu_short = _short_gpu_name(gpu.name) if gpu and engine_sms else None
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
        **shared_sections(manifest, upstream, repo_id=repo_id),
        "metadata": metadata,
        "legacy_only": quant is not None and quant.checkpoint_kind == "trtllm_legacy",
        "model_name": upstream.repo_id,
        "quant_method_upper": upper,
        "source_model_link": upstream.url,
        "w_bit": bits,
        "kv_cache_dtype": _kv_cache(manifest),
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
        "engine_note": _engine_note(not_built, fmt) if not built else None,
        "artifact_sizes": _artifact_sizes(manifest),
        "calib_dataset": figures.dataset_label(calib.dataset) if calib else None,
        "calib_size": calib.samples if calib else None,
        "calib_seqlen": calib.seq_len if calib else None,
        "awq_block_size": ((calib.awq_block_size if calib else None) or spec.recipe.awq_block_size)
        if fmt in AWQ_FORMATS
        else None,
        "calib_batch_size": calib.batch_size if calib else None,
        "validation": figures.validation_table(manifest),
        "min_compute_capability": f"{min_sm // 10}.{min_sm % 10}" if min_sm else None,
        "gpu_arch_note": " / ".join(x for x in (family, gpu_short) if x) or None,
        "quant_portability_note": _portability_note(
            upper, spec.target_sms, supported, engines_built=bool(built), examples=example_gpus(fmt)
        ),
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


def _supported_sms(fmt: str) -> list[int]:
    """The SMs whose row of TensorRT-LLM's hardware matrix marks the format `Y` (bot/eligibility/matrices)."""
    m = load_matrices()
    column = m.trtllm_hardware.column_for(fmt)
    if column is None:
        return []
    return sorted(sm for sm, info in m.sms.items() if m.trtllm_hardware.cell(info.row, column).supported)


def _short_gpu_name(name: str) -> str:
    """`NVIDIA H100 NVL` → `H100`: the GPU model as the seed's architecture note writes it."""
    words = name.removeprefix("NVIDIA").split()
    return words[0] if words else name


def _portability_note(
    upper: str, targets: list[int], supported: list[int], *, engines_built: bool, examples: str | None
) -> str | None:
    """Where the checkpoint runs. With engines, as the seed example writes it: the SMs the build targeted
    (`sm89/sm90+`). Without, the GPU families TensorRT-LLM's hardware matrix supports for the format."""
    if engines_built:
        across = "/".join(f"sm{s}" for s in [s for s in targets if s in supported] or supported)
        return (
            f"{upper} checkpoints are portable across {across}+ GPUs; rebuild engines for the target GPU "
            f"({_examples(examples)}) or reuse one of the prebuild engines in case they match your GPU."
        )
    if not supported:
        return None
    m = load_matrices()
    families = list(dict.fromkeys(m.sms[s].family for s in supported))
    named = f"{', '.join(families[:-1])} and {families[-1]}" if len(families) > 1 else families[0]
    return (
        f"{upper} checkpoints run on {named} GPUs ({'/'.join(f'sm{s}' for s in supported)}) according to "
        f"TensorRT-LLM's hardware support matrix; build engines on the target GPU ({_examples(examples)})."
    )


def _examples(examples: str | None) -> str:
    return f"e.g. {examples}" if examples else "one of the SMs above"


def _engine_note(not_built: list[Any], fmt: str) -> str:
    """Why there is no engine, and what runs the checkpoint instead: only runtimes that load the format."""
    reasons = sorted({e.reason for e in not_built if e.reason})
    why = f" ({'; '.join(reasons)})" if reasons else ""
    names = [r.name for r, _ in load_runtimes().loaders(fmt)]
    runs = f" Run it with {' or '.join(names)} (see *Runs with*)." if names else ""
    only = "the repo holds the quantized checkpoint only"
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
