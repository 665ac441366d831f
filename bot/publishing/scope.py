"""What a release quantized and what it left in the base model's precision, in words, from the config the
build exported (ModelOpt's `exclude_modules`, GPTQModel's `lm_head`) and the format's own definition.

ModelOpt and GPTQModel quantize the linear layers inside the decoder blocks; embeddings and normalization
layers are never quantized, and the exported config names any other layer left out (usually `lm_head`).
"""

from __future__ import annotations

from dataclasses import dataclass

from builders.spec import Manifest

_LAYERS = "the linear layers of every decoder block (attention and MLP projections)"
# How each exported algorithm stores the quantized layers (ModelOpt 0.47's exporters; GPTQModel's config).
_PRECISION = {
    "FP8": "weights and activations in FP8 (E4M3, one scale per tensor)",
    "W8A8_SQ_PER_CHANNEL": (
        "weights in INT8 (one scale per output channel) and activations in INT8 (one scale per tensor), "
        "after SmoothQuant moved activation outliers into the weights"
    ),
    "W4A16_AWQ": (
        "weights in INT4 (AWQ, one scale per group of {group} input channels), activations in 16 bits"
    ),
    "W4A8_AWQ": "weights in INT4 (AWQ, one scale per group of {group} input channels), activations in FP8",
    "NVFP4": "weights and activations in FP4 (E2M1, one FP8 scale per group of 16 values and one per tensor)",
}


@dataclass(frozen=True)
class Scope:
    quantized: str
    not_quantized: str


def quantized_scope(manifest: Manifest, kv_cache: str | None) -> Scope | None:
    """Which layers are quantized and how, and which are not (None when the manifest has no quantization)."""
    quant = manifest.quantization
    if quant is None:
        return None
    if quant.producer == "modelopt":
        section = quant.config.get("quantization")
        excluded = (section if isinstance(section, dict) else {}).get("exclude_modules") or []
        precision = _PRECISION.get(quant.quant_algo or "", f"`{quant.quant_algo}`")
    else:
        excluded = [] if quant.config.get("lm_head") else ["lm_head"]
        order = ", in activation order" if quant.desc_act else ""
        precision = (
            f"weights in {quant.bits}-bit integers (GPTQ, one scale and zero point per group of "
            f"{{group}} input channels{order}), activations in 16 bits"
        )
    vision = bool(manifest.source and manifest.source.vision)
    kept = [f"`{name}`" for name in excluded]
    if vision:  # ModelOpt's exclude_modules name the vision tower and projector, which stay as they were
        dtype = manifest.source.dtype if manifest.source else None
        bits = {"bfloat16": "16-bit", "float16": "16-bit", "float32": "32-bit"}.get(dtype or "", "")
        kept.insert(0, f"the vision tower and projector, as the upstream stores them ({bits} {dtype})")
    if not any("embed" in name for name in excluded):
        kept.append("the token embeddings")
    kept.append("the normalization layers")
    if kv_cache and kv_cache.startswith("not quantized"):
        kept.append("the KV cache")
    layers = (
        _LAYERS.replace("every decoder block", "every decoder block of the language model")
        if vision
        else _LAYERS
    )
    return Scope(
        quantized=f"{layers}: {precision.format(group=quant.group_size)}",
        not_quantized=", ".join(kept),
    )
