"""The invariance gate: an exported release compared with its upstream at the pinned revision, before upload.

A quantized release is its upstream with quantized weights, nothing else. The gate checks that of the files
on disk: the upstream's metadata files are its own bytes and no other such file was added, at the root and in
a legacy TensorRT-LLM checkpoint (builders/invariance.py); config.json at the root differs from the upstream's
only in the keys quantization adds (int8_sq, whose checkpoint is the legacy one: it is the upstream's file as
it is); a sample text tokenizes to the same ids and the chat template renders the same conversation to the
same string (builders/readback.py); every linear layer in the scope the release's quantization config declares
is quantized and every other one, and the input embedding, is the upstream's tensor; the weights' size, as a
fraction of the upstream's, is what the format implies; a legacy checkpoint's config says the upstream's RoPE
and vocabulary. The checkpoint's kind (`hf_unified`, `gptq`, `trtllm_legacy`) decides only where its files are
and what it calls the upstream's layers. The validate stage runs it, so a release that fails it is a failed
build: nothing is uploaded, and the manifest says why. The publisher checks the files again before it uploads
them (bot/publishing/gate.py).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from builders import checks as layouts
from builders import readback
from builders.invariance import (
    CONFIG,
    CONFIG_AS_IS,
    GATE_PREFIX,
    changed_dtype,
    file_problems,
    metadata_files,
    root_config_problems,
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
    checkpoint = release / quantization["checkpoint"]
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
    config = root_config_problems(
        upstream / CONFIG, release / CONFIG, kind, changed_dtype(checkpoint, upstream)
    )
    said = (
        f"the upstream's file as it is (the checkpoint's own is {quantization['config_file']})"
        if kind in CONFIG_AS_IS
        else "the upstream's keys and values, with quantization_config added"
    )
    checks.append(_check(CONFIG, config, said))
    before, after = (
        readback.read(str(upstream), trust_remote_code),
        readback.read(str(release), trust_remote_code),
    )
    checks.append(
        _check("tokenizer and chat template", readback.differences(before, after), readback.summary(after))
    )
    layers = _declared_scope(release, quantization, _upstream_layers(upstream, trust_remote_code))
    checks.append(_scope(checkpoint, upstream, quantization, layers))
    checks.append(_size(checkpoint, upstream, fmt, quantization, layers))
    if legacy:
        checks.append(_legacy_config(_json(release / legacy / CONFIG), _json(upstream / CONFIG)))
    return checks


def _check(name: str, problems: list[str], ok_detail: str) -> Check:
    detail = "; ".join(problems[:6]) + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
    return Check(name=GATE_PREFIX + name, ok=not problems, detail=detail[:600] if problems else ok_detail)


def _json(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class _Upstream:
    """The upstream's architecture: every `nn.Linear` (name → out, in features), the name of its stack of
    decoder layers, and of its input embedding."""

    linears: dict[str, tuple[int, int]]
    stack: str
    embedding: str


def _upstream_layers(upstream: Path, trust_remote_code: bool) -> _Upstream:
    """The upstream's layers, from the model built on the meta device (no weight is read). transformers 5
    keeps a mixture of experts' experts (and its router) as fused modules, not `nn.Linear`s, while the
    checkpoints store one linear layer per expert: every 2-D weight of the upstream's files inside the decoder
    stack that the model has no linear layer for counts as one, by its stored name and shape, and a linear
    layer of the model inside the stack that the files store under another name (Mixtral's, whose files keep
    `block_sparse_moe.experts.N.w1` where transformers 5 names `mlp.experts`) counts only by that one. A
    vision-language model's modules are named as its checkpoints name them (transformers 5 moves them, e.g.
    `model.layers` to `model.language_model.layers`), and its stack is its language model's."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

    from builders.hfmodel import is_vision_language

    vision = is_vision_language(_json(upstream / CONFIG))
    auto = AutoModelForImageTextToText if vision else AutoModelForCausalLM
    config = AutoConfig.from_pretrained(upstream, trust_remote_code=trust_remote_code)
    with torch.device("meta"):
        model = auto.from_config(config, trust_remote_code=trust_remote_code)
    stored = _checkpoint_names(model) if vision else (lambda name: name)
    layers = getattr(config.get_text_config(), "num_hidden_layers", None)
    embedding = next(n for n, m in model.named_modules() if m is model.get_input_embeddings())
    linears = {
        stored(name): (module.out_features, module.in_features)
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
    }
    stacks = [n for n, m in model.named_modules() if isinstance(m, torch.nn.ModuleList) and len(m) == layers]
    # the language model's stack: the one beside the input embedding (a vision tower may have as many layers)
    stack = stored(max(stacks, key=lambda n: len(_common_prefix(n, embedding)), default=""))
    files = {n.removesuffix(".weight"): t for n, t in _tensors(upstream).items() if n.endswith(".weight")}
    for module, tensor in files.items():
        if len(tensor["shape"]) == 2 and module.startswith(f"{stack}."):
            linears.setdefault(module, (tensor["shape"][0], tensor["shape"][1]))
    if files:  # a decoder layer's module the files store under another name (Mixtral's experts) counts once
        linears = {m: s for m, s in linears.items() if m in files or not m.startswith(f"{stack}.")}
    return _Upstream(linears=linears, stack=stack, embedding=stored(embedding))


def _checkpoint_names(model: Any) -> Callable[[str], str]:
    """A module's name as the model's checkpoints store it (transformers' own renaming, reverted)."""
    import torch
    from transformers.core_model_loading import revert_weight_conversion

    def stored(name: str) -> str:
        if not name:
            return name
        reverted = revert_weight_conversion(model, {f"{name}.weight": torch.empty(0, device="meta")})
        return str(next(iter(reverted))).removesuffix(".weight")

    return stored


def _common_prefix(a: str, b: str) -> str:
    return a[: next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))]


# How each kind of checkpoint names the upstream's layers. A Hugging Face checkpoint (ModelOpt's unified
# one, GPTQModel's) keeps the upstream's names. TensorRT-LLM's legacy checkpoint has its own, as ModelOpt
# 0.47's legacy exporter writes them (modelopt/torch/export/layer_utils.py: build_attention_config,
# build_mlp_config's keywords) and TensorRT-LLM's models read them: the decoder stack is `transformer.layers`;
# q, k and v are one `attention.qkv` (their rows one after the other), o is `attention.dense`; the MLP's gate
# projection is `mlp.fc`, its up projection `mlp.gate`, its down projection `mlp.proj`; the input embedding is
# `transformer.vocab_embedding`; lm_head keeps its name.
@dataclass(frozen=True)
class _Naming:
    stack: str | None = None  # None: the upstream's names throughout
    layer: dict[str, str] = field(default_factory=dict)  # a decoder layer's module → its name there
    embedding: str | None = None


_NAMING = {
    "hf_unified": _Naming(),
    "gptq": _Naming(),
    "trtllm_legacy": _Naming(
        stack="transformer.layers",
        layer={
            "self_attn.q_proj": "attention.qkv",
            "self_attn.k_proj": "attention.qkv",
            "self_attn.v_proj": "attention.qkv",
            "self_attn.qkv_proj": "attention.qkv",
            "self_attn.o_proj": "attention.dense",
            "mlp.gate_proj": "mlp.fc",
            "mlp.gate_up_proj": "mlp.fc",
            "mlp.up_proj": "mlp.gate",
            "mlp.down_proj": "mlp.proj",
        },
        embedding="transformer.vocab_embedding",
    ),
}


def _stored_name(naming: _Naming, module: str, upstream: _Upstream) -> str | None:
    """The name under which a checkpoint of this naming stores an upstream module (None: none known)."""
    if naming.stack is None:
        return module
    if module == upstream.embedding:
        return naming.embedding
    if not module.startswith(upstream.stack + "."):
        return module
    index, _, local = module[len(upstream.stack) + 1 :].partition(".")
    return f"{naming.stack}.{index}.{naming.layer[local]}" if local in naming.layer else None


@dataclass(frozen=True)
class _Layers:
    """The upstream's linear layers, split as the release's config declares, and how the checkpoint names
    them."""

    upstream: _Upstream
    scope: list[str]  # quantized
    ignored: list[str]  # left as they were
    names: dict[str, str | None]  # upstream module → the checkpoint's name for it


def _declared_scope(release: Path, quantization: dict[str, Any], upstream: _Upstream) -> _Layers:
    """The layers the release's quantization config says are quantized, and those it leaves out. ModelOpt:
    every linear layer but `exclude_modules` (in the upstream's names or the checkpoint's); GPTQModel: the
    decoder layers' linear layers (and lm_head when its config says so), but those its `dynamic` rules exclude
    (`-:` patterns)."""
    kind, linears = quantization["checkpoint_kind"], upstream.linears
    declared = _json(release / quantization["config_file"])
    names = {m: _stored_name(_NAMING[kind], m, upstream) for m in [*linears, upstream.embedding]}
    if kind == "gptq":
        negative = [re.compile(k[2:]) for k in declared.get("dynamic") or {} if k.startswith("-:")]
        scope = [
            m
            for m in linears
            if (m.startswith(upstream.stack + ".") or (m == "lm_head" and declared.get("lm_head")))
            and not any(r.match(m) for r in negative)
            and not any(fnmatch(m, p) for p in layouts.UNQUANTIZED_MOE)
        ]
    else:
        excluded = declared["quantization"].get("exclude_modules") or []
        scope = [
            m
            for m in linears
            if not any(fnmatch(name, p) for p in excluded for name in (m, names[m]) if name is not None)
        ]
    return _Layers(upstream, scope, [m for m in linears if m not in scope], names)


def _tensors(folder: Path) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for file in sorted(folder.glob("*.safetensors")):
        found |= safetensors_header(file)
    return found


def _module_problems(quantization: dict[str, Any]) -> Callable[[dict[str, Any], str, int, int], list[str]]:
    """How one quantized layer of this checkpoint differs from its format's layout (the layout's checks in
    builders/checks.py, bound to the release's quantization config)."""
    kind, config = quantization["checkpoint_kind"], quantization["config"]
    if kind == "gptq":
        return lambda meta, m, rows, cols: layouts.gptq_module_problems(
            meta, m, rows, cols, config["bits"], config["group_size"]
        )
    if kind == "trtllm_legacy":
        return layouts.legacy_module_problems
    quant = config["quantization"]
    layout = layouts.UNIFIED_LAYOUTS[quant["quant_algo"]]
    group = layouts.NVFP4_GROUP if quant["quant_algo"] == "NVFP4" else quant.get("group_size")
    return lambda meta, m, rows, cols: layouts.unified_module_problems(meta, m, rows, cols, layout, group)


def _scope(checkpoint: Path, upstream: Path, quantization: dict[str, Any], layers: _Layers) -> Check:
    """Every layer in scope stored quantized, as the format lays it out (a fused layer of the legacy
    checkpoint with the rows of all its parts); every ignored layer and the input embedding stored as the
    upstream's tensor, with no scales."""
    mine, theirs = _tensors(checkpoint), _tensors(upstream)
    meta = {name: (t["dtype"], t["shape"]) for name, t in mine.items()}
    linears, scope, ignored = layers.upstream.linears, layers.scope, layers.ignored
    kind = quantization["checkpoint_kind"]
    problems = [f"{m} has no name known in a {kind} checkpoint" for m, n in layers.names.items() if n is None]
    fused: dict[str, list[str]] = {}
    for m in scope:
        if layers.names[m] is not None:
            fused.setdefault(str(layers.names[m]), []).append(m)
    module_problems = _module_problems(quantization)
    for stored_as, parts in fused.items():
        rows, widths = sum(linears[m][0] for m in parts), {linears[m][1] for m in parts}
        problems += (
            module_problems(meta, stored_as, rows, widths.pop())
            if len(widths) == 1
            else [f"{stored_as} fuses layers of different widths ({', '.join(parts)})"]
        )
    for m in [*ignored, layers.upstream.embedding]:
        original, kept_as = theirs.get(f"{m}.weight"), layers.names[m]
        if original is None or kept_as is None:  # tied to the embedding: nothing of its own to compare
            continue
        stored = mine.get(f"{kept_as}.weight")
        if stored is None or (stored["dtype"], stored["shape"]) != (original["dtype"], original["shape"]):
            problems.append(f"{m} (not quantized) is not the upstream's {original['dtype']} weight")
        extra = [
            n for n in mine if n.startswith(f"{kept_as}.") and n.rsplit(".", 1)[-1] not in ("weight", "bias")
        ]
        problems += [f"{m} (not quantized) has {n.rsplit('.', 1)[-1]}" for n in extra[:1]]
    detail = f"{len(scope)} linear layers quantized"
    detail += f" (as {len(fused)} layers of the checkpoint)" if len(fused) != len(scope) else ""
    detail += f", {len(ignored)} left as they were"
    return _check("quantized scope", problems, detail + (f" ({', '.join(ignored[:4])})" if ignored else ""))


def _data_bytes(tensors: dict[str, dict[str, Any]]) -> int:
    return sum(math.prod(t["shape"]) * _ITEM_BYTES.get(t["dtype"], 2) for t in tensors.values())


def _size(checkpoint: Path, upstream: Path, fmt: str, quantization: dict[str, Any], layers: _Layers) -> Check:
    """The checkpoint's tensor bytes against the upstream's: the layers in scope at the format's bits (plus
    their scales at most), everything else as it was."""
    theirs = _tensors(upstream)
    linears = layers.upstream.linears
    total, mine = _data_bytes(theirs), _data_bytes(_tensors(checkpoint))
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
