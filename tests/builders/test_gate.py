"""The upstream's metadata kept, and the invariance gate that checks it, on real builds of a Llama-3-style
upstream (rope_theta 500000, llama3 rope_scaling, its tokenizer class and chat template inside
tokenizer_config.json, written as transformers 4.x wrote them), whatever transformers 5 writes by default."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from builders.gate import gate
from builders.invariance import GATE_CHECKS, metadata_files

pytestmark = pytest.mark.slow

UPSTREAM_FILES = [
    "generation_config.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
]


@pytest.mark.parametrize("fmt", ["fp8", "int8_sq", "int4_awq", "w4a8_awq", "nvfp4", "gptq"])
def test_every_format_keeps_the_upstreams_files_and_config(builder: Any, fmt: str) -> None:
    """Byte for byte the upstream's files; config.json the upstream's JSON plus quantization_config (int8_sq,
    whose checkpoint is TensorRT-LLM's legacy one: the upstream's config.json as it is, at the root)."""
    result = builder.built(fmt)
    upstream = builder.upstream.model_dir
    assert metadata_files(p.name for p in upstream.iterdir()) == UPSTREAM_FILES
    folders = [result.out] + ([result.out / "trt-llm/checkpoints"] if fmt == "int8_sq" else [])
    for folder in folders:
        for name in UPSTREAM_FILES:
            assert (folder / name).read_bytes() == (upstream / name).read_bytes(), f"{folder}/{name}"
        assert not (folder / "chat_template.jinja").exists()  # the template stays inside tokenizer_config
    if fmt == "int8_sq":
        assert (result.out / "config.json").read_bytes() == (upstream / "config.json").read_bytes()
        return
    original = json.loads((upstream / "config.json").read_text())
    config = json.loads((result.out / "config.json").read_text())
    assert list(config) == [*original, "quantization_config"]
    assert {k: config[k] for k in original} == original
    assert (config["rope_theta"], config["rope_scaling"]["rope_type"], config["torch_dtype"]) == (
        500000.0,
        "llama3",
        "bfloat16",
    )
    assert "rope_parameters" not in config and "dtype" not in config
    method = config["quantization_config"]["quant_method"]
    assert method == ("gptq" if fmt == "gptq" else "modelopt")


def test_the_legacy_checkpoint_has_the_upstreams_rope(builder: Any) -> None:
    """ModelOpt's legacy exporter reads rope_theta/rope_scaling from the model's config, which transformers 5
    keeps as rope_parameters: the builder hands it the upstream's keys, so trtllm-build gets the real RoPE."""
    legacy = json.loads((builder.built("int8_sq").out / "trt-llm/checkpoints/config.json").read_text())
    assert legacy["rotary_base"] == 500000.0
    assert legacy["rotary_scaling"]["rope_type"] == "llama3" and legacy["rotary_scaling"]["factor"] == 32.0


@pytest.mark.parametrize("fmt", ["fp8", "int8_sq", "int4_awq", "w4a8_awq", "gptq"])
def test_every_build_passes_the_gate_and_records_it(builder: Any, fmt: str) -> None:
    checks = {c.name: c for c in builder.built(fmt).manifest.validation.checks}
    for name in GATE_CHECKS:
        assert checks[name].ok, f"{name}: {checks[name].detail}"
    assert "RoPE θ 500000.0 (llama3)" in checks["invariance: tokenizer and chat template"].detail
    assert "(lm_head)" in checks["invariance: quantized scope"].detail
    ratio = float(checks["invariance: size ratio"].detail.split()[0])
    assert ratio < (0.75 if fmt in ("fp8", "int8_sq") else 0.55)
    if fmt == "int8_sq":  # TensorRT-LLM's names: q, k and v fused into attention.qkv, gate and up apart
        assert checks["invariance: legacy checkpoint config"].ok
        assert (
            "14 linear layers quantized (as 10 layers of the checkpoint)"
            in checks["invariance: quantized scope"].detail
        )


def _resaved(result: Any, into: Path) -> Path:
    """The release as a toolchain that re-saves config and tokenizer with transformers 5 would leave it."""
    from transformers import AutoConfig, AutoTokenizer

    shutil.copytree(result.out, into)
    AutoConfig.from_pretrained(into).save_pretrained(into)
    AutoTokenizer.from_pretrained(into).save_pretrained(into)
    return into


def test_the_gate_catches_a_re_serialised_config_and_tokenizer(builder: Any, tmp_path: Path) -> None:
    result = builder.built("fp8")
    copy = _resaved(result, tmp_path / "release")
    quantization = result.manifest.quantization.model_dump()
    checks = {c.name: c for c in gate(copy, builder.upstream.model_dir, "fp8", quantization)}
    files, config = checks["invariance: upstream files"], checks["invariance: config.json"]
    assert not files.ok and "tokenizer_config.json is not the upstream's" in files.detail
    assert "tokenizer_class" in files.detail  # re-saved as TokenizersBackend, unknown to transformers 4
    assert not config.ok
    for problem in ("rope_scaling is missing", "rope_theta is missing", "rope_parameters is added"):
        assert problem in config.detail
    assert checks["invariance: quantized scope"].ok and checks["invariance: size ratio"].ok


def test_the_gate_catches_layers_left_unquantized(builder: Any, tmp_path: Path) -> None:
    """A GPTQ release whose weights are the upstream's (nothing quantized) fails scope and size."""
    result = builder.built("gptq")
    copy = Path(shutil.copytree(result.out, tmp_path / "release"))
    for file in copy.glob("*.safetensors"):
        file.unlink()
    shutil.copy(builder.upstream.model_dir / "model.safetensors", copy / "model.safetensors")
    checks = {
        c.name: c
        for c in gate(copy, builder.upstream.model_dir, "gptq", result.manifest.quantization.model_dump())
    }
    assert not checks["invariance: quantized scope"].ok
    assert "qweight is None" in checks["invariance: quantized scope"].detail
    size = checks["invariance: size ratio"]
    assert not size.ok and size.detail.startswith("1.000 of the upstream's tensor bytes")


def test_the_gate_checks_an_int8_sq_release_in_its_legacy_checkpoint(builder: Any, tmp_path: Path) -> None:
    """int8_sq's weights are TensorRT-LLM's legacy checkpoint: a layer of it left in BF16, lm_head quantized
    although the checkpoint's config excludes it, and a root config.json re-saved are each caught."""
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoConfig

    result = builder.built("int8_sq")
    copy = Path(shutil.copytree(result.out, tmp_path / "release"))
    rank0 = copy / "trt-llm/checkpoints/rank0.safetensors"
    tensors = load_file(rank0)
    dense = "transformer.layers.1.attention.dense"
    tensors[f"{dense}.weight"] = torch.zeros(128, 128, dtype=torch.bfloat16)
    del tensors[f"{dense}.weights_scaling_factor"]
    tensors["lm_head.weight"] = torch.zeros(512, 128, dtype=torch.int8)
    save_file(tensors, rank0)
    AutoConfig.from_pretrained(copy).save_pretrained(copy)  # transformers 5: rope_parameters

    quantization = result.manifest.quantization.model_dump()
    checks = {c.name: c for c in gate(copy, builder.upstream.model_dir, "int8_sq", quantization)}
    scope, config = checks["invariance: quantized scope"], checks["invariance: config.json"]
    assert not scope.ok
    assert f"{dense}.weight is ('BF16', [128, 128]), expected (I8, [128, 128])" in scope.detail
    assert f"{dense}.weights_scaling_factor is None" in scope.detail
    assert "lm_head (not quantized) is not the upstream's BF16 weight" in scope.detail
    assert not config.ok and config.detail.startswith("it is not the upstream's file as it is (keys ")
    assert "rope_theta" in config.detail
    assert checks["invariance: upstream files"].ok and checks["invariance: legacy checkpoint config"].ok
