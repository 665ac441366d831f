"""The invariance gate: an exported release compared with its upstream at the pinned revision, before upload.

A quantized release is its upstream with quantized weights, nothing else. The gate checks that of the files
on disk: the upstream's metadata files are its own bytes and no other such file was added
(builders/invariance.py); config.json differs from the upstream's only in the keys quantization adds; a sample
text tokenizes to the same ids and the chat template renders the same conversation to the same string
(builders/readback.py); every linear layer in the scope the release's quantization config declares is
quantized and every other one is the upstream's tensor; the weights' size, as a fraction of the upstream's,
is what the format implies. The validate stage runs it, so a release that fails it is a failed build: nothing
is uploaded, and the manifest says why. The publisher checks the files again before it uploads them
(bot/publishing/gate.py).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from builders import checks as layouts
from builders import readback
from builders.invariance import (
    CONFIG,
    GATE_PREFIX,
    changed_dtype,
    config_problems,
    file_problems,
    metadata_files,
    root_files,
    safetensors_header,
)
from builders.spec import Check

# Bits per quantized weight, and bits of group scales per weight at the group size (ModelOpt's and
# GPTQModel's layouts: FP8/INT8 one byte; 4-bit formats half a byte; AWQ an FP32 scale per group, NVFP4 an
# FP8 scale per 16, GPTQ an FP16 scale and a packed zero per group).
_BITS = {"fp8": (8, 0), "int8_sq": (8, 0), "int4_awq": (4, 32), "w4a8_awq": (4, 32), "nvfp4": (4, 8)}
_ITEM_BYTES = {"F64": 8, "F32": 4, "I32": 4, "U32": 4, "BF16": 2, "F16": 2, "I16": 2, "F8_E4M3": 1}
_ITEM_BYTES |= {"F8_E5M2": 1, "I8": 1, "U8": 1, "BOOL": 1, "I64": 8, "U64": 8}
_PER_LAYER_BYTES = 64  # per-tensor scales (input, weight, KV cache) of one layer


def gate(
    release: Path, upstream: Path, fmt: str, quantization: dict[str, Any], trust_remote_code: bool = False
) -> list[Check]:
    """Every check of the gate on an exported release (`quantization`: the export's manifest record)."""
    kind, legacy = quantization["checkpoint_kind"], quantization.get("legacy_checkpoint")
    upstream_files = {
        name: upstream / name for name in metadata_files(root_files(upstream), trust_remote_code)
    }
    problems = file_problems(upstream_files, release, kind)
    if legacy:
        problems += [
            f"{legacy}/{p}" for p in file_problems(upstream_files, release / legacy, "trtllm_legacy")
        ]
    kept = f"{len(upstream_files)} files are the upstream's bytes"
    checks = [_check("upstream files", problems, kept + (f" (and in {legacy})" if legacy else ""))]
    original = _json(upstream / CONFIG)
    config = config_problems(original, _json(release / CONFIG), changed_dtype(release, upstream))
    checks.append(_check(CONFIG, config, "the upstream's keys and values, with quantization_config added"))
    before, after = (
        readback.read(str(upstream), trust_remote_code),
        readback.read(str(release), trust_remote_code),
    )
    checks.append(
        _check("tokenizer and chat template", readback.differences(before, after), readback.summary(after))
    )
    linears, stack = _linear_layers(upstream, trust_remote_code)
    layers = _declared_scope(release, kind, linears, stack)
    checks.append(_scope(release, upstream, fmt, quantization, layers))
    checks.append(_size(release, upstream, fmt, quantization, layers))
    if legacy:
        checks.append(_legacy_config(_json(release / legacy / CONFIG), original))
    return checks


def _check(name: str, problems: list[str], ok_detail: str) -> Check:
    detail = "; ".join(problems[:6]) + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
    return Check(name=GATE_PREFIX + name, ok=not problems, detail=detail[:600] if problems else ok_detail)


def _json(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


def _linear_layers(upstream: Path, trust_remote_code: bool) -> tuple[dict[str, tuple[int, int]], str]:
    """Every `nn.Linear` of the upstream's architecture (name → out, in features), from the model built on
    the meta device (no weight is read), and the name of its stack of decoder layers."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(upstream, trust_remote_code=trust_remote_code)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    layers = getattr(config.get_text_config(), "num_hidden_layers", None)
    stack = next(
        (n for n, m in model.named_modules() if isinstance(m, torch.nn.ModuleList) and len(m) == layers), ""
    )
    linears = {
        name: (module.out_features, module.in_features)
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
    }
    return linears, stack


@dataclass(frozen=True)
class _Layers:
    """The upstream's linear layers (name → out, in features), split as the release's config declares."""

    shapes: dict[str, tuple[int, int]]
    scope: list[str]  # quantized
    ignored: list[str]  # left as they were


def _declared_scope(release: Path, kind: str, linears: dict[str, tuple[int, int]], stack: str) -> _Layers:
    """The layers the release's quantization config says are quantized, and those it leaves out. ModelOpt:
    every linear layer but `exclude_modules`; GPTQModel: the decoder layers' linear layers (and lm_head when
    its config says so), but those its `dynamic` rules exclude (`-:` patterns)."""
    if kind == "gptq":
        qcfg = _json(release / "quantize_config.json")
        negative = [re.compile(k[2:]) for k in qcfg.get("dynamic") or {} if k.startswith("-:")]
        scope = [
            m
            for m in linears
            if (m.startswith(stack + ".") or (m == "lm_head" and qcfg.get("lm_head")))
            and not any(r.match(m) for r in negative)
        ]
    else:
        excluded = _json(release / "hf_quant_config.json")["quantization"].get("exclude_modules") or []
        scope = [m for m in linears if not any(m == p or fnmatch(m, p) for p in excluded)]
    return _Layers(linears, scope, [m for m in linears if m not in scope])


def _tensors(folder: Path) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for file in sorted(folder.glob("*.safetensors")):
        found |= safetensors_header(file)
    return found


def _scope(release: Path, upstream: Path, fmt: str, quantization: dict[str, Any], layers: _Layers) -> Check:
    mine, theirs = _tensors(release), _tensors(upstream)
    linears, scope, ignored = layers.shapes, layers.scope, layers.ignored
    meta = {name: (t["dtype"], t["shape"]) for name, t in mine.items()}
    problems: list[str] = []
    if fmt == "gptq":
        qcfg = quantization["config"]
        for m in scope:
            problems += layouts.gptq_module_problems(meta, m, *linears[m], qcfg["bits"], qcfg["group_size"])
    else:
        quant = quantization["config"]["quantization"]
        layout = layouts.UNIFIED_LAYOUTS[quant["quant_algo"]]
        group = layouts.NVFP4_GROUP if quant["quant_algo"] == "NVFP4" else quant.get("group_size")
        for m in scope:
            problems += layouts.unified_module_problems(meta, m, *linears[m], layout, group)
    for m in ignored:
        original = theirs.get(f"{m}.weight")
        if original is None:  # tied to the embedding: nothing of its own to compare
            continue
        stored = mine.get(f"{m}.weight")
        if stored is None or (stored["dtype"], stored["shape"]) != (original["dtype"], original["shape"]):
            problems.append(f"{m} (ignored) is not the upstream's {original['dtype']} weight")
        extra = [n for n in mine if n.startswith(f"{m}.") and n.rsplit(".", 1)[-1] not in ("weight", "bias")]
        problems += [f"{m} (ignored) has {n.rsplit('.', 1)[-1]}" for n in extra[:1]]
    detail = f"{len(scope)} linear layers quantized, {len(ignored)} left as they were"
    return _check("quantized scope", problems, detail + (f" ({', '.join(ignored[:4])})" if ignored else ""))


def _data_bytes(tensors: dict[str, dict[str, Any]]) -> int:
    return sum(math.prod(t["shape"]) * _ITEM_BYTES.get(t["dtype"], 2) for t in tensors.values())


def _size(release: Path, upstream: Path, fmt: str, quantization: dict[str, Any], layers: _Layers) -> Check:
    """The release's tensor bytes against the upstream's: the layers in scope at the format's bits (plus its
    scales at most), everything else as it was."""
    theirs = _tensors(upstream)
    linears = layers.shapes
    total, mine = _data_bytes(theirs), _data_bytes(_tensors(release))
    if fmt == "gptq":
        bits = quantization["config"]["bits"]
        group, scale_bits = quantization["config"]["group_size"], 16 + bits
    else:
        bits, scale_bits = _BITS[fmt]
        group = quantization["config"]["quantization"].get("group_size") or 16
    quantized = [m for m in layers.scope if f"{m}.weight" in theirs]
    low = high = float(total)
    for m in quantized:
        rows, cols = linears[m]
        low -= _data_bytes({m: theirs[f"{m}.weight"]}) - rows * cols * bits / 8
        scales = rows * cols * (scale_bits / max(group, 1) + 32 / rows + 32 / cols) / 8 + _PER_LAYER_BYTES
        high -= _data_bytes({m: theirs[f"{m}.weight"]}) - rows * cols * bits / 8 - scales
    ok = low <= mine <= high and total > 0
    detail = (
        f"{mine / total:.3f} of the upstream's tensor bytes ({mine} of {total}); {fmt} implies "
        f"{low / total:.3f} to {high / total:.3f}"
    )
    return Check(name=GATE_PREFIX + "size ratio", ok=ok, detail=detail)


def _legacy_config(legacy: dict[str, Any], upstream: dict[str, Any]) -> Check:
    """The legacy TensorRT-LLM checkpoint's config says what the upstream's does of RoPE and vocabulary
    (TensorRT-LLM's names: rotary_base, 10000 where absent; rotary_scaling)."""
    wanted = {**legacy_rope(upstream), "vocab_size": upstream.get("vocab_size")}
    found = {"rotary_base": 10000.0, "rotary_scaling": None} | {k: legacy[k] for k in wanted if k in legacy}
    problems = [
        f"{key} is {readback.short(found.get(key))} (upstream: {readback.short(value)})"
        for key, value in wanted.items()
        if found.get(key) != value
    ]
    return _check(
        "legacy checkpoint config", problems, ", ".join(f"{k} {readback.short(v)}" for k, v in wanted.items())
    )


def legacy_rope(upstream: dict[str, Any]) -> dict[str, Any]:
    """The upstream's RoPE in TensorRT-LLM's legacy names, whichever transformers line wrote its config
    (4.x: rope_theta and rope_scaling; 5.x: rope_parameters)."""
    rope = upstream.get("rope_parameters") or {}
    scaling = upstream.get("rope_scaling")
    if scaling is None and rope.get("rope_type") not in (None, "default"):
        scaling = {k: v for k, v in rope.items() if k != "rope_theta"}
    return {
        "rotary_base": upstream.get("rope_theta", rope.get("rope_theta", 10000.0)),
        "rotary_scaling": scaling,
    }
