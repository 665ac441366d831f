"""The structural checks catch checkpoints that are not what their config claims.

Each test copies a real exported checkpoint (from the session's builds), damages one thing, and expects
exactly the matching check to fail.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from builders.checks import check_gptq, check_unified

pytestmark = pytest.mark.slow

AWQ_EXPECT = {"num_layers": 2, "kv_cache_quant_algo": "FP8", "group_size": 128}


def copy_checkpoint(result: Any, tmp_path: Path) -> Path:
    target = tmp_path / "ckpt"
    shutil.copytree(result.out / result.manifest.quantization.checkpoint, target)
    return target


def failing(checks: list) -> set[str]:
    return {c.name for c in checks if not c.ok}


def rewrite_tensors(folder: Path, change: Any) -> None:
    from safetensors.torch import load_file, save_file

    path = folder / "model.safetensors"
    tensors = load_file(path)
    change(tensors)
    save_file(tensors, path, metadata={"format": "pt"})


def test_the_untouched_checkpoint_passes(builder: Any) -> None:
    result = builder.built("int4_awq")
    ckpt = result.out / result.manifest.quantization.checkpoint
    base = result.snapshot
    assert failing(check_unified(ckpt, base, "int4_awq", AWQ_EXPECT)) == set()


def test_an_unquantized_layer_is_caught(builder: Any, tmp_path: Path) -> None:
    import torch

    result = builder.built("int4_awq")
    ckpt = copy_checkpoint(result, tmp_path)
    name = "model.layers.1.mlp.up_proj.weight"
    rewrite_tensors(ckpt, lambda t: t.__setitem__(name, torch.zeros(256, 128, dtype=torch.bfloat16)))
    checks = check_unified(ckpt, result.snapshot, "int4_awq", AWQ_EXPECT)
    assert failing(checks) == {"quantized linear layers"}
    assert name in next(c.detail for c in checks if c.name == "quantized linear layers")


def test_a_missing_kv_scale_and_a_nan_scale_are_caught(builder: Any, tmp_path: Path) -> None:
    result = builder.built("int4_awq")
    ckpt = copy_checkpoint(result, tmp_path)

    def damage(t: dict) -> None:
        del t["model.layers.0.self_attn.k_proj.k_scale"]
        t["model.layers.0.self_attn.q_proj.weight_scale"][0, 0] = float("nan")

    rewrite_tensors(ckpt, damage)
    checks = check_unified(ckpt, result.snapshot, "int4_awq", AWQ_EXPECT)
    assert failing(checks) == {"kv-cache scales", "scales finite"}


def test_a_config_that_claims_another_scheme_is_caught(builder: Any, tmp_path: Path) -> None:
    result = builder.built("int4_awq")
    ckpt = copy_checkpoint(result, tmp_path)
    config = json.loads((ckpt / "hf_quant_config.json").read_text())
    config["quantization"]["group_size"] = 64
    (ckpt / "hf_quant_config.json").write_text(json.dumps(config))
    checks = check_unified(ckpt, result.snapshot, "int4_awq", AWQ_EXPECT)
    assert {"group_size", "quantized linear layers"} <= failing(checks)  # scales no longer fit 64


def test_gptq_with_other_bits_than_asked_is_caught(builder: Any) -> None:
    result = builder.built("gptq")
    expect = {"bits": 8, "group_size": 128, "desc_act": False}
    checks = check_gptq(result.out, result.snapshot, expect)
    assert failing(checks) == {"quantize_config", "gptq packed layers"}
