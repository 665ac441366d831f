"""Structural checks of an exported checkpoint against its own quantization config and the base model.

No runtime on this machine loads a ModelOpt checkpoint (TensorRT-LLM, vLLM and SGLang need CUDA), so its
files are checked instead: the config names the expected algorithm, group size and KV-cache scheme, every
decoder linear layer of the base model is present in the stored dtype and packed shape that algorithm
implies with its scales, every other tensor is unchanged, and no scale is NaN or infinite. GPTQ
checkpoints get the same treatment for GPTQ's packing before they are also reloaded.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from builders.spec import Check


# What ModelOpt 0.47 stores for each unified-checkpoint algorithm (read from its exporter, confirmed by
# exporting the tiny Llama): the packed weight's dtype, which axis holds two 4-bit values per byte,
# the per-block scale layout, and which extra scales exist.
@dataclass(frozen=True)
class Layout:
    weight_dtype: str
    packed_axis: int | None  # 0: rows (out features) halved, 1: columns (in features) halved
    group_scale_dtype: str | None  # None: one weight_scale per tensor, or per output channel
    input_scale: bool
    weight_scale_2: bool
    per_channel: bool = False  # the weight_scale has one value per output channel (rows)


UNIFIED_LAYOUTS = {
    "FP8": Layout("F8_E4M3", None, None, True, False),
    "W4A16_AWQ": Layout("U8", 0, "F32", False, False),
    "W4A8_AWQ": Layout("U8", 0, "F32", True, True),
    "NVFP4": Layout("U8", 1, "F8_E4M3", True, True),
    "W8A8_SQ_PER_CHANNEL": Layout("I8", None, None, True, False, per_channel=True),
}
EXPECTED_ALGO = {
    "fp8": "FP8",
    "int8_sq": "W8A8_SQ_PER_CHANNEL",
    "int4_awq": "W4A16_AWQ",
    "w4a8_awq": "W4A8_AWQ",
    "nvfp4": "NVFP4",
}
NVFP4_GROUP = 16


class Tensors:
    """Names, dtypes and shapes of every tensor in a folder's safetensors files (data read on demand)."""

    def __init__(self, folder: Path) -> None:
        from safetensors import safe_open

        self.meta: dict[str, tuple[str, list[int]]] = {}
        self._file: dict[str, Path] = {}
        self.files = sorted(Path(folder).glob("*.safetensors"))
        for file in self.files:
            with safe_open(file, framework="pt") as f:
                for name in f.keys():  # noqa: SIM118 (safe_open is not iterable)
                    sl = f.get_slice(name)
                    self.meta[name] = (sl.get_dtype(), list(sl.get_shape()))
                    self._file[name] = file

    def finite(self, name: str) -> bool:
        from safetensors import safe_open

        with safe_open(self._file[name], framework="pt") as f:
            return bool(f.get_tensor(name).float().isfinite().all())


def _numel(shape: list[int]) -> int:
    return math.prod(shape) if shape else 1


def _linear_weights(base: Tensors) -> dict[str, list[int]]:
    """The decoder's linear layers: 2-D ``*.weight`` tensors inside ``.layers.`` (norms are 1-D)."""
    return {
        name[: -len(".weight")]: shape
        for name, (_, shape) in base.meta.items()
        if name.endswith(".weight") and ".layers." in name and len(shape) == 2
    }


def _excluded(module: str, patterns: list[str]) -> bool:
    return any(module == p or fnmatch(module, p) for p in patterns)


def _finite_scales(tensors: Tensors, names: list[str]) -> Check:
    bad = [n for n in names if not tensors.finite(n)]
    return Check(
        name="scales finite",
        ok=not bad,
        detail=f"{len(names)} scale tensors" + (f"; bad: {bad[:3]}" if bad else ""),
    )


def check_unified(ckpt: Path, base_dir: Path, fmt: str, expect: dict[str, Any]) -> list[Check]:
    """A ModelOpt unified HF checkpoint (hf_quant_config.json + model*.safetensors)."""
    quant = json.loads((ckpt / "hf_quant_config.json").read_text())["quantization"]
    checks = _config_checks(quant, fmt, expect)
    layout = UNIFIED_LAYOUTS.get(quant.get("quant_algo", ""))
    if layout is None:
        return [
            *checks,
            Check(name="layout known", ok=False, detail=f"no layout rule for {quant.get('quant_algo')}"),
        ]
    out, base = Tensors(ckpt), Tensors(base_dir)
    excluded = quant.get("exclude_modules") or []
    group = NVFP4_GROUP if quant["quant_algo"] == "NVFP4" else quant.get("group_size")
    problems: list[str] = []
    quantized = 0
    for module, (rows, cols) in _linear_weights(base).items():
        if _excluded(module, excluded):
            continue
        quantized += 1
        problems += unified_module_problems(out.meta, module, rows, cols, layout, group)
    checks.append(
        Check(
            name="quantized linear layers",
            ok=not problems and quantized > 0,
            detail=f"{quantized} layers as {layout.weight_dtype}" + (f"; {problems[:3]}" if problems else ""),
        )
    )
    checks.append(_unchanged_tensors(out, base, set(_linear_weights(base)) - _excluded_set(base, excluded)))
    checks.append(_kv_scales(out.meta, expect, (".k_scale", ".v_scale")))
    checks.append(_finite_scales(out, [n for n in out.meta if "scale" in n.rsplit(".", 1)[-1]]))
    return checks


def _excluded_set(base: Tensors, excluded: list[str]) -> set[str]:
    return {m for m in _linear_weights(base) if _excluded(m, excluded)}


def unified_module_problems(
    meta: dict[str, Any], module: str, rows: int, cols: int, layout: Layout, group: int | None
) -> list[str]:
    """How one linear layer of a unified checkpoint differs from its algorithm's layout (empty: it is as
    `layout` says; `rows`, `cols` are the base weight's shape)."""
    weight = meta.get(f"{module}.weight")
    if weight is None:
        return [f"{module}.weight missing"]
    shape = [rows, cols]
    if layout.packed_axis is not None:
        shape[layout.packed_axis] //= 2
    problems = []
    if weight != (layout.weight_dtype, shape):
        problems.append(f"{module}.weight is {weight}, expected ({layout.weight_dtype}, {shape})")
    scale = meta.get(f"{module}.weight_scale")
    if layout.group_scale_dtype is None:
        expected_scale = _numel(scale[1]) == (rows if layout.per_channel else 1) if scale else False
    else:
        expected_scale = (
            scale == (layout.group_scale_dtype, [rows, cols // group]) if scale and group else False
        )
    if not expected_scale:
        problems.append(f"{module}.weight_scale is {scale}")
    for suffix, wanted in (("input_scale", layout.input_scale), ("weight_scale_2", layout.weight_scale_2)):
        if (f"{module}.{suffix}" in meta) != wanted:
            problems.append(f"{module}.{suffix} {'missing' if wanted else 'unexpected'}")
    return problems


def _unchanged_tensors(out: Tensors, base: Tensors, quantized_modules: set[str]) -> Check:
    """Every base tensor that is not a quantized layer's weight keeps its dtype and shape."""
    changed = [
        name
        for name, meta in base.meta.items()
        if name[: -len(".weight")] not in quantized_modules and out.meta.get(name) != meta
    ]
    return Check(
        name="other tensors unchanged",
        ok=not changed,
        detail=f"{len(base.meta) - len(quantized_modules)} tensors"
        + (f"; changed: {changed[:3]}" if changed else ""),
    )


def _kv_scales(meta: dict[str, Any], expect: dict[str, Any], suffixes: tuple[str, ...]) -> Check:
    layers = expect["num_layers"]
    found = sum(1 for n in meta if n.endswith(suffixes))
    wanted = layers * len(suffixes) if expect["kv_cache_quant_algo"] else 0
    return Check(name="kv-cache scales", ok=found == wanted, detail=f"{found} found, {wanted} expected")


def _config_checks(quant: dict[str, Any], fmt: str, expect: dict[str, Any]) -> list[Check]:
    algo = quant.get("quant_algo")
    checks = [
        Check(
            name="quant_algo", ok=algo == EXPECTED_ALGO[fmt], detail=f"{algo} (expected {EXPECTED_ALGO[fmt]})"
        ),
        Check(
            name="kv_cache_quant_algo",
            ok=quant.get("kv_cache_quant_algo") == expect["kv_cache_quant_algo"],
            detail=f"{quant.get('kv_cache_quant_algo')} (expected {expect['kv_cache_quant_algo']})",
        ),
    ]
    if expect.get("group_size") is not None:
        checks.append(
            Check(
                name="group_size",
                ok=quant.get("group_size") == expect["group_size"],
                detail=f"{quant.get('group_size')} (expected {expect['group_size']})",
            )
        )
    return checks


def check_legacy(ckpt: Path, base_dir: Path, fmt: str, expect: dict[str, Any]) -> list[Check]:
    """A legacy TensorRT-LLM checkpoint (config.json + rank*.safetensors): fused names, so count elements."""
    quant = json.loads((ckpt / "config.json").read_text()).get("quantization") or {}
    checks = _config_checks(quant, fmt, expect)
    out, base = Tensors(ckpt), Tensors(base_dir)
    int8 = {
        n[: -len(".weight")]: shape
        for n, (dtype, shape) in out.meta.items()
        if n.endswith(".weight") and dtype == "I8"
    }
    problems = []
    for module, (rows, cols) in int8.items():
        problems += legacy_module_problems(out.meta, module, rows, cols)
    stored = sum(_numel(s) for s in int8.values())
    wanted = sum(_numel(s) for s in _linear_weights(base).values())
    checks.append(
        Check(
            name="int8 linear layers",
            ok=stored == wanted and not problems,
            detail=f"{len(int8)} fused layers, {stored} int8 weights for {wanted} base weights"
            + (f"; {problems[:3]}" if problems else ""),
        )
    )
    checks.append(_kv_scales(out.meta, expect, (".kv_cache_scaling_factor",)))
    checks.append(_finite_scales(out, [n for n in out.meta if "scaling_factor" in n]))
    return checks


# The scales of one INT8 SmoothQuant layer in a legacy TensorRT-LLM checkpoint (ModelOpt 0.47's legacy
# exporter writes them, TensorRT-LLM's SmoothQuant linear reads them), by the axis they have one value for: a
# weight scale per output channel (0), a smoothing factor per input channel (1), one activation scale (None).
LEGACY_SQ_SCALES = {
    "weights_scaling_factor": 0,
    "prequant_scaling_factor": 1,
    "activation_scaling_factor": None,
}


def legacy_module_problems(meta: dict[str, Any], module: str, rows: int, cols: int) -> list[str]:
    """How one linear layer of a legacy INT8 SmoothQuant checkpoint differs from an INT8 `rows` × `cols`
    weight with its scales (`module`: TensorRT-LLM's name; a fused layer has the rows of all its parts)."""
    weight = meta.get(f"{module}.weight")
    problems = (
        []
        if weight == ("I8", [rows, cols])
        else [f"{module}.weight is {weight}, expected (I8, {[rows, cols]})"]
    )
    for suffix, axis in LEGACY_SQ_SCALES.items():
        scale, wanted = meta.get(f"{module}.{suffix}"), 1 if axis is None else (rows, cols)[axis]
        if scale is None or _numel(scale[1]) != wanted:
            problems.append(f"{module}.{suffix} is {scale}, expected {wanted} values")
    return problems


# The linear layers of a mixture of experts that GPTQ leaves in 16 bits: the router, which picks the experts
# (Mixtral's `block_sparse_moe.gate`, Qwen-MoE's `mlp.gate`), and Qwen2-MoE's shared-expert gate (GPTQModel
# 7.6's model definitions quantize neither). They stay as the upstream stores them.
UNQUANTIZED_MOE = ("*.block_sparse_moe.gate", "*.mlp.gate", "*.mlp.shared_expert_gate")


def check_gptq(ckpt: Path, base_dir: Path, expect: dict[str, Any]) -> list[Check]:
    """A GPTQ checkpoint: quantize_config.json as asked, qweight/qzeros/scales/g_idx per layer, and the MoE
    routers and shared-expert gates as the upstream has them."""
    qcfg = json.loads((ckpt / "quantize_config.json").read_text())
    bits, group, desc_act = expect["bits"], expect["group_size"], expect["desc_act"]
    checks = [
        Check(
            name="quantize_config",
            ok=(qcfg.get("bits"), qcfg.get("group_size"), qcfg.get("desc_act"), qcfg.get("checkpoint_format"))
            == (bits, group, desc_act, "gptq"),
            detail=f"bits {qcfg.get('bits')}, group {qcfg.get('group_size')}, "
            f"desc_act {qcfg.get('desc_act')}, format {qcfg.get('checkpoint_format')}",
        )
    ]
    out, base = Tensors(ckpt), Tensors(base_dir)
    problems = []
    layers = _linear_weights(base)
    routers = {m for m in layers if _excluded(m, list(UNQUANTIZED_MOE))}
    for module, (rows, cols) in layers.items():
        if module not in routers:
            problems += gptq_module_problems(out.meta, module, rows, cols, bits, group)
    checks.append(
        Check(
            name="gptq packed layers",
            ok=not problems and bool(layers),
            detail=f"{len(layers) - len(routers)} layers, {bits}-bit"
            + (f"; {problems[:3]}" if problems else ""),
        )
    )
    if routers:
        changed = sorted(m for m in routers if out.meta.get(f"{m}.weight") != base.meta[f"{m}.weight"])
        checks.append(
            Check(
                name="MoE routers unquantized",
                ok=not changed,
                detail=f"{len(routers)} router and shared-expert gates as the upstream stores them"
                + (f"; changed: {changed[:3]}" if changed else ""),
            )
        )
    checks.append(_finite_scales(out, [n for n in out.meta if n.endswith(".scales")]))
    return checks


def gptq_module_problems(
    meta: dict[str, Any], module: str, rows: int, cols: int, bits: int, group: int
) -> list[str]:
    """How one linear layer of a GPTQ checkpoint differs from GPTQ's packing of a `rows` × `cols` weight."""
    groups = 1 if group == -1 else math.ceil(cols / group)
    wanted = {
        "qweight": ("I32", [cols * bits // 32, rows]),
        "qzeros": ("I32", [groups, rows * bits // 32]),
        "scales": ("F16", [groups, rows]),
        "g_idx": ("I32", [cols]),
    }
    return [
        f"{module}.{k} is {meta.get(f'{module}.{k}')}"
        for k, v in wanted.items()
        if meta.get(f"{module}.{k}") != v
    ]
