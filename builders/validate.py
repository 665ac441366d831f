"""validate: is the artifact what it claims to be, and does the quantized model still model language?

Every format gets the structural checks of `checks` on the exported files, and the invariance gate (`gate`:
the release against its upstream: metadata files, config keys, tokenizer and chat template, quantized scope,
size). Then the quantized model is run: GPTQ artifacts are reloaded from the output dir with GPTQModel
(as a user would), or, where export gave a mixture's layers the upstream's names that no loader here reads
(Mixtral), GPTQModel's own checkpoint of the same tensors; ModelOpt artifacts cannot be loaded by anything
that runs here, so the fake-quantized model measured by the quantize stage (before export) stands in. Its
perplexity on the held-out text — a different text from the calibration data — is compared with the base
model's; a build whose validation fails is a failed build.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from builders import checks as structure
from builders import gptq
from builders.context import BuildContext
from builders.failures import BuildFailure
from builders.gate import gate
from builders.hfmodel import generate_sample, perplexity
from builders.spec import AWQ_FORMATS, Check, Perplexity, Sample, ValidationRecord, ValidationSettings
from builders.tiny import heldout_text_path

KV_ALGO = {"fp8": "FP8", "int8": "INT8", "none": None}


def eval_text_path(v: ValidationSettings) -> Path:
    return Path(v.eval_text) if v.eval_text else heldout_text_path()


def eval_text(v: ValidationSettings) -> str:
    path = eval_text_path(v)
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise BuildFailure(
            "eval_text_missing", f"cannot read the held-out text {path}: {e}", bad_input=True
        ) from e


def validate(ctx: BuildContext) -> dict[str, Any]:
    spec, v = ctx.spec, ctx.spec.validation
    load, quant, export = ctx.details("load"), ctx.details("quantize"), ctx.details("export")
    ckpt = ctx.out_dir / export["quantization"]["checkpoint"]
    ctx.progress(0.1, "checking the exported files against their quantization config")
    expect: dict[str, Any]
    if spec.format == "gptq":
        expect = {
            "bits": spec.recipe.gptq_bits,
            "group_size": spec.recipe.gptq_group_size,
            "desc_act": spec.recipe.gptq_desc_act,
        }
        found = structure.check_gptq(ckpt, ctx.snapshot_dir, expect)
        ctx.progress(0.4, "reloading the GPTQ checkpoint with GPTQModel")
        measured = _reload_and_measure(ctx)
        reload = f"{measured.pop('loader')} on {ctx.torch_device}"
        method = "GPTQ checkpoint reloaded with GPTQModel"
    else:
        expect = {
            "num_layers": load["num_layers"],
            "kv_cache_quant_algo": KV_ALGO[spec.recipe.kv_cache],
            "group_size": spec.recipe.awq_block_size
            if spec.format in AWQ_FORMATS
            else (16 if spec.format == "nvfp4" else None),
        }
        if (
            export["quantization"]["checkpoint_kind"] == "trtllm_legacy"
        ):  # int8_sq: the legacy checkpoint only
            found = structure.check_legacy(ckpt, ctx.snapshot_dir, spec.format, expect)
        else:
            found = structure.check_unified(ckpt, ctx.snapshot_dir, spec.format, expect)
        measured = quant
        reload = (
            "structural check of the exported files (no runtime for ModelOpt checkpoints on this machine)"
        )
        method = "ModelOpt fake quantization in memory, before export"
    ctx.progress(0.8, "comparing the release with its upstream (the invariance gate)")
    found += gate(ctx.out_dir, ctx.snapshot_dir, spec.format, export["quantization"], spec.trust_remote_code)
    ppl = _perplexity_record(load, measured, method, v)
    found += _quality_checks(ppl, measured.get("sample"), v)
    failed = [c for c in found if not c.ok]
    record = ValidationRecord(
        ok=not failed,
        reload=reload,
        checks=found,
        perplexity=ppl,
        sample=Sample(**measured["sample"]) if measured.get("sample") else None,
        reason="; ".join(f"{c.name}: {c.detail}" for c in failed) or None,
    )
    details = {"validation": record.model_dump(mode="json")}
    if failed:
        raise BuildFailure("validation_failed", f"validation failed: {record.reason}", details=details)
    return details


def _reload_and_measure(ctx: BuildContext) -> dict[str, Any]:
    v = ctx.spec.validation
    tokenizer = ctx.tokenizer()
    model, loader = gptq.reload(ctx)
    ctx.progress(0.6, "measuring the reloaded checkpoint on the held-out text")
    result = {
        "loader": loader,
        "quantized_perplexity": perplexity(model, tokenizer, eval_text(v), v.eval_tokens, v.eval_seq_len),
        "sample": generate_sample(model, tokenizer, v.prompt, v.generate_tokens),
    }
    del model
    ctx.release_model()
    return result


def _perplexity_record(
    load: dict[str, Any], measured: dict[str, Any], method: str, v: ValidationSettings
) -> Perplexity:
    base = load["base_perplexity"]
    quantized = (measured.get("quantized_perplexity") or {}).get("perplexity")
    return Perplexity(
        text=eval_text_path(v).name,
        tokens=load["eval_tokens"],
        seq_len=v.eval_seq_len,
        base=base,
        quantized=quantized,
        delta=None if quantized is None else quantized - base,
        delta_pct=None if quantized is None else 100.0 * (quantized - base) / base,
        method=method,
        not_measured=measured.get("not_measured"),
    )


def _quality_checks(ppl: Perplexity, sample: dict[str, Any] | None, v: ValidationSettings) -> list[Check]:
    if ppl.quantized is None or ppl.base is None:  # the load stage always measures the base
        return [
            Check(
                name="quantized perplexity measured",
                ok=not v.require_perplexity,
                detail=(ppl.not_measured or "not measured")
                + ("" if v.require_perplexity else " (allowed: validation.require_perplexity is false)"),
            )
        ]
    limit = ppl.base * (1 + v.max_perplexity_increase)
    return [
        Check(
            name="perplexity within bound",
            ok=ppl.quantized <= limit,
            detail=f"base {ppl.base_figure()}, quantized {ppl.quantized_figure()}, limit {limit:.3f}",
        ),
        Check(
            name="generates tokens",
            ok=bool(sample and sample["new_tokens"] > 0),
            detail=f"{sample['new_tokens'] if sample else 0} new tokens",
        ),
    ]
