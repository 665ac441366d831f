"""ModelOpt formats (fp8, int8_sq, int4_awq, w4a8_awq, nvfp4): calibrate, evaluate, export.

quantize: `mtq.quantize` with the `mtq.*_CFG` of DESIGN.md (AWQ block size and KV-cache entries applied
as ModelOpt's hf_ptq applies them), then the fake-quantized model's perplexity and a sample are measured
*before* export (export packs the weights in place; the model cannot run afterwards), then the quantized
state is saved with `mto.save`. A rerun restores it with `mto.restore` onto a freshly loaded base model,
so calibration — the long part — never runs twice.

export: the unified HF checkpoint (`export_hf_checkpoint`) at the output root, which becomes the repo root,
so the release loads by repo id, with the upstream's metadata files and config keys (invariance.py) in place
of what the exporter's transformers wrote. int8_sq is exported, as hf_ptq writes it, as the legacy
TensorRT-LLM checkpoint under ``trt-llm/checkpoints/`` only: the one form a runtime serves (trtllm-build,
TensorRT-LLM ≤ 1.2); no runtime reads a unified W8A8 SmoothQuant checkpoint, and transformers would run its
INT8 weights without their scales. Its root holds the upstream's config and metadata files as they are, and
no weights. For any other format the engines stage asks `export_legacy` for that checkpoint when it is about
to run trtllm-build. Export packs the weights in place, so every second export starts from the quantized state
restored onto a fresh base model.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from pathlib import Path
from typing import Any

from builders.artifacts import LEGACY, clear_output, hash_folder, move_into, scrub_host_paths
from builders.calibration import batches, load_calibration
from builders.checks import EXPECTED_ALGO
from builders.context import BuildContext, with_oom_retry
from builders.hfmodel import generate_from_image, generate_sample, perplexity, read_config
from builders.invariance import CONFIG, keep_upstream_metadata
from builders.spec import AWQ_FORMATS, MANIFEST_NAME, BuildSpec

CONFIG_NAMES = {
    "fp8": "FP8_DEFAULT_CFG",
    "int8_sq": "INT8_SMOOTHQUANT_CFG",
    "int4_awq": "INT4_AWQ_CFG",
    "w4a8_awq": "W4A8_AWQ_BETA_CFG",
    "nvfp4": "NVFP4_DEFAULT_CFG",
}
# ModelOpt 0.47 ships an FP8 KV preset (mtq.FP8_KV_CFG) but none for INT8; this entry is the INT8 twin of
# the FP8 one (8-bit integer instead of E4M3), which its legacy exporter labels kv_cache_quant_algo INT8.
_INT8_KV_ENTRIES = [{"quantizer_name": "*[kv]_bmm_quantizer", "cfg": {"num_bits": 8, "axis": None}}]
STATE_FILE = "modelopt_state.pth"
IMAGE_QUESTION = "What is in this image?"


def quant_config(spec: BuildSpec) -> dict[str, Any]:
    """The `mtq` config for the spec: the format's constant, its AWQ block size, its KV-cache entries."""
    import modelopt.torch.quantization as mtq

    cfg = copy.deepcopy(getattr(mtq, CONFIG_NAMES[spec.format]))
    if spec.format in AWQ_FORMATS:
        entry = next(e for e in reversed(cfg["quant_cfg"]) if e.get("quantizer_name") == "*weight_quantizer")
        weight = entry["cfg"][0] if isinstance(entry["cfg"], list) else entry["cfg"]
        weight["block_sizes"][-1] = spec.recipe.awq_block_size
    if spec.recipe.kv_cache == "fp8":
        cfg = mtq.update_quant_cfg_with_kv_cache_quant(cfg, mtq.FP8_KV_CFG["quant_cfg"])
    elif spec.recipe.kv_cache == "int8":
        cfg = mtq.update_quant_cfg_with_kv_cache_quant(cfg, _INT8_KV_ENTRIES)
    return cfg


def outside_language_model(model: Any) -> list[str]:
    """A vision-language model's parts beside its language model (vision tower, projector), by module name:
    ModelOpt quantizes the language model only, as its VLM example does; none for a causal LM."""
    inner = getattr(model, "model", None)
    if inner is None or not hasattr(inner, "language_model"):
        return []
    return [name for name, _ in inner.named_children() if name != "language_model"]


def language_model_only(cfg: dict[str, Any], kept: list[str]) -> dict[str, Any]:
    """`cfg` with every quantizer in the `kept` modules disabled, so they export in the upstream's dtype."""
    disabled = [{"quantizer_name": f"*{name}*", "enable": False} for name in kept]
    return cfg | {"quant_cfg": [*cfg["quant_cfg"], *disabled]} if disabled else cfg


def quantize(ctx: BuildContext) -> dict[str, Any]:
    import modelopt.torch.opt as mto
    import modelopt.torch.quantization as mtq

    spec = ctx.spec
    tokenizer = ctx.tokenizer()
    ctx.progress(0.01, f"tokenizing calibration data {spec.recipe.calib_dataset}")
    calib = load_calibration(spec.recipe, tokenizer, ctx.details("fetch").get("calibration", {}))
    cfg = quant_config(spec)
    passes = 2 if spec.format in AWQ_FORMATS else 1  # awq_lite caches statistics, then searches
    done = [0.0]
    kept: list[str] = []

    def attempt(batch_size: int, number: int) -> Any:
        model = ctx.base_model(fresh=number > 0)
        kept[:] = outside_language_model(model)
        total = -(-len(calib.samples) // batch_size)
        calls = [0]

        def forward_loop(m: Any) -> None:
            calls[0] += 1
            for i, batch in enumerate(batches(calib, batch_size, tokenizer.pad_token_id, ctx.torch_device)):
                ctx.inject_oom(number)
                m(**batch, use_cache=False)
                done[0] = max(done[0], ((calls[0] - 1) + (i + 1) / total) / passes)
                ctx.progress(
                    0.05 + 0.75 * min(done[0], 1.0),
                    f"calibration pass {calls[0]}, batch {i + 1}/{total}",
                    step=min((calls[0] - 1) * total + i + 1, passes * total),
                    steps=passes * total,
                )
                ctx.hold()

        return mtq.quantize(model, language_model_only(cfg, kept), forward_loop)

    model, batch_used, retries = with_oom_retry(ctx, spec.recipe.calib_batch_size, attempt)
    ctx.keep_model(model, "quantized")
    ctx.progress(0.85, "measuring the fake-quantized model on the held-out text")
    started = time.monotonic()
    fake_quant = _fake_quant_eval(ctx, model, tokenizer)
    if kept:  # a vision-language model: its answer about an image, or why that could not run here
        image = generate_from_image(model, ctx.snapshot_dir, IMAGE_QUESTION, spec.validation.generate_tokens)
        fake_quant["image_sample"] = image
    checked_s = round(time.monotonic() - started, 3)  # of the stage's time: the validation's part
    state = ctx.work_dir / "quantize" / STATE_FILE
    state.parent.mkdir(parents=True, exist_ok=True)
    partial = state.with_suffix(".partial")
    mto.save(model, str(partial))
    partial.replace(state)
    return {
        "calibration": calib.record(batch_used, retries)
        | {"awq_block_size": spec.recipe.awq_block_size if spec.format in AWQ_FORMATS else None},
        "quant_config": CONFIG_NAMES[spec.format],
        "kv_cache": spec.recipe.kv_cache,
        "not_quantized_modules": kept,
        **fake_quant,
        "checked_s": checked_s,
        "state_file": str(state),
        "outputs": [str(state)],
    }


def _fake_quant_eval(ctx: BuildContext, model: Any, tokenizer: Any) -> dict[str, Any]:
    """Perplexity and a sample of the fake-quantized model; on CPU some kernels (NVFP4) need CUDA."""
    from builders.validate import eval_text

    v = ctx.spec.validation
    try:
        ppl = perplexity(model, tokenizer, eval_text(v), v.eval_tokens, v.eval_seq_len)
        sample = generate_sample(model, tokenizer, v.prompt, v.generate_tokens)
    except (AssertionError, RuntimeError, NotImplementedError) as e:
        if ctx.device.kind == "cuda" or "cuda" not in str(e).lower():
            raise
        return {
            "quantized_perplexity": None,
            "not_measured": f"fake-quant {ctx.spec.format} needs CUDA here: {e}",
        }
    return {"quantized_perplexity": ppl, "sample": sample}


def quantized_model(ctx: BuildContext, fresh: bool = False) -> Any:
    """The calibrated model: the one in memory, or the base model with the saved ModelOpt state restored."""
    import modelopt.torch.opt as mto

    if ctx.model_kind == "quantized" and not fresh:
        return ctx.model
    model = ctx.base_model(fresh=True)
    mto.restore(model, ctx.details("quantize")["state_file"])
    ctx.keep_model(model, "quantized")
    return model


def export(ctx: BuildContext) -> dict[str, Any]:
    import torch
    from modelopt.torch.export import export_hf_checkpoint

    spec, out = ctx.spec, ctx.out_dir
    if spec.format == "int8_sq":
        return _export_legacy_release(ctx)
    partial = out / ".export.partial"
    shutil.rmtree(partial, ignore_errors=True)
    model = quantized_model(ctx)
    ctx.progress(0.2, "exporting the HF checkpoint")
    with torch.inference_mode():
        export_hf_checkpoint(model, export_dir=partial)
    ctx.release_model()  # export packed its weights in place: it cannot run any more
    ctx.hold()
    scrubbed = scrub_host_paths(partial)
    metadata = keep_upstream_metadata(partial, ctx.snapshot_dir, "hf_unified", spec.trust_remote_code)
    clear_output(out, keep=(MANIFEST_NAME, partial.name))
    move_into(partial, out)
    return _exported(
        ctx,
        out / "hf_quant_config.json",
        checkpoint=".",
        kind="hf_unified",
        scrubbed=scrubbed,
        metadata=metadata,
    )


def _export_legacy_release(ctx: BuildContext) -> dict[str, Any]:
    """int8_sq: the legacy checkpoint (weights, INT8 KV cache, the upstream's metadata files) is the release;
    the root holds the upstream's config.json and metadata files as they are, so those load by repo id."""
    out = ctx.out_dir
    clear_output(out, keep=(MANIFEST_NAME,))
    legacy, found = export_legacy(ctx, at=0.2)
    ctx.progress(0.7, "writing the upstream's config and metadata files at the repository root")
    shutil.copyfile(ctx.snapshot_dir / CONFIG, out / CONFIG)
    metadata = keep_upstream_metadata(out, ctx.snapshot_dir, "trtllm_legacy", ctx.spec.trust_remote_code)
    return _exported(
        ctx,
        legacy / CONFIG,
        checkpoint=LEGACY.as_posix(),
        kind="trtllm_legacy",
        legacy=legacy,
        scrubbed=[f"{LEGACY.as_posix()}/{where}" for where in found],
        metadata=metadata,
    )


def _exported(
    ctx: BuildContext,
    config_file: Path,
    *,
    checkpoint: str,
    kind: str,
    scrubbed: list[str],
    metadata: dict[str, Any],
    legacy: Path | None = None,
) -> dict[str, Any]:
    """The export stage's record: the quantization as the exported config says it, and the hashed files."""
    spec, out = ctx.spec, ctx.out_dir
    exported = json.loads(config_file.read_text())
    quant = exported.get("quantization", {})
    ctx.progress(0.9, "hashing artifacts")
    return {
        "quantization": {
            "format": spec.format,
            "producer": "modelopt",
            "producer_version": exported.get("producer", {}).get("version"),
            "quant_algo": quant.get("quant_algo"),
            "kv_cache_quant_algo": quant.get("kv_cache_quant_algo"),
            "kv_cache_reason": kv_cache_reason(spec),
            "group_size": quant.get("group_size"),
            "checkpoint": checkpoint,
            "checkpoint_kind": kind,
            "config_file": config_file.relative_to(out).as_posix(),
            "config": exported,
            "legacy_checkpoint": LEGACY.as_posix() if legacy else None,
            "legacy_quantization": quant if legacy else None,
        },
        "expected_algo": EXPECTED_ALGO[spec.format],
        "legacy_checkpoint": str(legacy) if legacy else None,
        "upstream_metadata": metadata,
        "host_paths_removed": scrubbed,
        "artifacts": [a for a in hash_folder(out, ".") if a["path"] != MANIFEST_NAME],
        "outputs": [str(config_file)],
    }


def kv_cache_reason(spec: BuildSpec) -> str:
    """Why the KV cache is quantized or not: the spec's own reason, else that the recipe asked so."""
    return spec.recipe.kv_cache_reason or (
        "not quantized: the recipe says kv_cache none"
        if spec.recipe.kv_cache == "none"
        else f"{spec.recipe.kv_cache}: asked for by the recipe"
    )


def export_legacy(ctx: BuildContext, at: float = 0.1) -> tuple[Path, list[str]]:
    """The legacy checkpoint trtllm-build reads, with the upstream's tokenizer files, in
    ``trt-llm/checkpoints``: int8_sq's served form (export stage), else the engines' input, published beside
    them (engines stage, GPU workers only) so that whoever rebuilds an engine for another GPU starts from it.
    Returns the folder and the host paths removed from its files."""
    import torch
    from modelopt.torch.export import export_tensorrt_llm_checkpoint

    target = ctx.out_dir / LEGACY
    partial = target.with_name(".checkpoints.partial")
    shutil.rmtree(partial, ignore_errors=True)
    ctx.progress(at, "exporting the legacy TensorRT-LLM checkpoint for trtllm-build")
    model = quantized_model(ctx, fresh=True)
    _upstream_keys_for_legacy_export(model, read_config(ctx.snapshot_dir))
    with torch.inference_mode():
        export_tensorrt_llm_checkpoint(model, ctx.details("load")["decoder_type"], None, partial, 1, 1)
    ctx.release_model()
    scrubbed = scrub_host_paths(partial)
    keep_upstream_metadata(partial, ctx.snapshot_dir, "trtllm_legacy", ctx.spec.trust_remote_code)
    shutil.rmtree(target, ignore_errors=True)
    partial.replace(target)
    return target, scrubbed


def _upstream_keys_for_legacy_export(model: Any, upstream: dict[str, Any]) -> None:
    """ModelOpt's legacy exporter reads the model's settings from `model.config.__dict__` under the upstream's
    own key names (`rope_theta`, `rope_scaling`, …); transformers 5 keeps some under other names
    (`rope_parameters`), so without them the checkpoint would say rotary_base 10000 and no scaling. Every
    upstream key the config lacks goes into its `__dict__` as the upstream wrote it (not through setattr,
    which transformers maps onto its own names); an upstream saved by transformers 5 gets its RoPE in the
    names the exporter reads."""
    from builders.gate import legacy_rope

    rope = legacy_rope(upstream)
    for key, value in {
        "rope_theta": rope["rotary_base"],
        "rope_scaling": rope["rotary_scaling"],
        **upstream,
    }.items():
        model.config.__dict__.setdefault(key, value)
