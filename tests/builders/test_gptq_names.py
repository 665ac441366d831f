"""A GPTQ release carries the upstream's tensor names: GPTQModel's transformers-5 names for Mixtral's experts
and router are given the upstream's on export, tensor by tensor; a family whose upstream uses transformers
5's names (Qwen3-MoE) keeps them."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from builders.gptq import upstream_layer_names

_GPTQ = ("qweight", "qzeros", "scales", "g_idx")


def _write(folder: Path, names: list[str], *, index: bool = False) -> dict[str, torch.Tensor]:
    folder.mkdir()
    tensors = {n: torch.full((2, 2), float(i)) for i, n in enumerate(names)}
    save_file(tensors, str(folder / "model.safetensors"))
    if index:
        (folder / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {}, "weight_map": dict.fromkeys(names, "model.safetensors")})
        )
    return tensors


def _layer(
    prefix: str, experts: str, router: str, parts: tuple[str, ...], kinds: tuple[str, ...]
) -> list[str]:
    names = [f"{prefix}.{router}.weight", f"{prefix}.self_attn.q_proj.{kinds[0]}"]
    names += [f"{prefix}.self_attn.q_proj.{k}" for k in kinds[1:]]
    names += [f"{prefix}.{experts}.{e}.{p}.{k}" for e in (0, 1) for p in parts for k in kinds]
    return names


def test_mixtral_layers_get_the_upstreams_names_with_every_tensor_of_theirs(tmp_path: Path) -> None:
    upstream = _write(
        tmp_path / "up",
        _layer(
            "model.layers.0",
            "block_sparse_moe.experts",
            "block_sparse_moe.gate",
            ("w1", "w3", "w2"),
            ("weight",),
        ),
    )
    saved = _write(
        tmp_path / "out",
        _layer("model.layers.0", "mlp.experts", "mlp.gate", ("gate_proj", "up_proj", "down_proj"), _GPTQ),
        index=True,
    )
    renamed = upstream_layer_names(tmp_path / "out", tmp_path / "up")
    assert renamed == {
        "model.layers.N.mlp.experts.N.down_proj → model.layers.N.block_sparse_moe.experts.N.w2": 2,
        "model.layers.N.mlp.experts.N.gate_proj → model.layers.N.block_sparse_moe.experts.N.w1": 2,
        "model.layers.N.mlp.experts.N.up_proj → model.layers.N.block_sparse_moe.experts.N.w3": 2,
        "model.layers.N.mlp.gate → model.layers.N.block_sparse_moe.gate": 1,
    }
    release = load_file(tmp_path / "out" / "model.safetensors")
    pairs = {"gate_proj": "w1", "up_proj": "w3", "down_proj": "w2"}
    for e in (0, 1):
        for ours, theirs in pairs.items():
            for k in _GPTQ:
                moved = f"model.layers.0.block_sparse_moe.experts.{e}.{theirs}.{k}"
                assert release[moved].equal(saved[f"model.layers.0.mlp.experts.{e}.{ours}.{k}"])
    router = "model.layers.0.block_sparse_moe.gate.weight"
    assert release[router].equal(saved["model.layers.0.mlp.gate.weight"]) and router in upstream
    assert "model.layers.0.self_attn.q_proj.qweight" in release  # named as the upstream already
    assert not [n for n in release if ".mlp." in n]
    index = json.loads((tmp_path / "out" / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(release)


def test_an_upstream_with_transformers_5_names_keeps_them(tmp_path: Path) -> None:
    parts = ("gate_proj", "up_proj", "down_proj")
    _write(tmp_path / "up", _layer("model.layers.0", "mlp.experts", "mlp.gate", parts, ("weight",)))
    saved = _write(tmp_path / "out", _layer("model.layers.0", "mlp.experts", "mlp.gate", parts, _GPTQ))
    assert upstream_layer_names(tmp_path / "out", tmp_path / "up") == {}
    assert set(load_file(tmp_path / "out" / "model.safetensors")) == set(saved)
