"""The rule of what a release may change of its upstream, on small folders (no model, no toolchain)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from builders.invariance import (
    config_problems,
    file_problems,
    keep_upstream_metadata,
    metadata_files,
    release_config,
    root_config_problems,
    stored_dtype,
)

LLAMA3 = {
    "architectures": ["LlamaForCausalLM"],
    "rope_scaling": {"factor": 32.0, "rope_type": "llama3"},
    "rope_theta": 500000.0,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.45.0.dev0",
    "vocab_size": 512,
}
# What transformers 5 writes for the same model: another spelling of the same settings.
RESAVED = {
    "architectures": ["LlamaForCausalLM"],
    "dtype": "bfloat16",
    "rope_parameters": {"factor": 32.0, "rope_theta": 500000.0, "rope_type": "llama3"},
    "transformers_version": "5.14.1",
    "vocab_size": 512,
    "quantization_config": {"quant_method": "modelopt", "quant_algo": "FP8"},
}


def _safetensors(path: Path, tensors: dict[str, str]) -> None:
    """A header-only safetensors file: name → dtype, each tensor one element (enough for stored_dtype)."""
    sizes = {"BF16": 2, "F16": 2, "F32": 4, "F8_E4M3": 1, "I32": 4}
    header, offset = {}, 0
    for name, dtype in tensors.items():
        header[name] = {"dtype": dtype, "shape": [1], "data_offsets": [offset, offset + sizes[dtype]]}
        offset += sizes[dtype]
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * offset)


def test_a_release_carries_the_upstreams_root_metadata_and_nothing_it_copies_otherwise() -> None:
    files = [
        "config.json", "model-00001-of-00002.safetensors", "model.safetensors.index.json", "tokenizer.json",
        "tokenizer_config.json", "chat_template.jinja", "generation_config.json", "preprocessor_config.json",
        "LICENSE", "USE_POLICY.md", "README.md", ".gitattributes", "original/params.json",
        "original/tokenizer.model", "merges.txt", "modeling_custom.py", "pytorch_model.bin",
    ]  # fmt: skip
    assert metadata_files(files) == [
        "chat_template.jinja", "generation_config.json", "merges.txt", "preprocessor_config.json",
        "tokenizer.json", "tokenizer_config.json",
    ]  # fmt: skip
    assert "modeling_custom.py" in metadata_files(files, trust_remote_code=True)  # code auto_map names


def test_release_config_is_the_upstreams_json_plus_the_quantization_keys() -> None:
    config = release_config(LLAMA3, RESAVED, dtype=None)
    assert config == LLAMA3 | {"quantization_config": RESAVED["quantization_config"]}
    assert list(config) == [*LLAMA3, "quantization_config"]
    assert config_problems(LLAMA3, config, dtype=None) == []
    # a changed dtype goes under the upstream's own key
    assert release_config(LLAMA3, RESAVED, dtype="float16")["torch_dtype"] == "float16"
    assert release_config({"dtype": "bfloat16"}, {}, dtype="float16") == {"dtype": "float16"}
    assert release_config({}, {}, dtype="float16") == {"torch_dtype": "float16"}


def test_config_problems_name_every_key_spelled_or_valued_otherwise() -> None:
    problems = config_problems(LLAMA3, RESAVED, dtype=None)
    assert problems == [
        "rope_scaling is missing", "rope_theta is missing", "torch_dtype is missing", "dtype is added",
        "rope_parameters is added", 'transformers_version is "5.14.1" (upstream: "4.45.0.dev0")',
    ]  # fmt: skip
    assert config_problems(LLAMA3, LLAMA3, dtype=None) == ["quantization_config is missing"]
    changed = LLAMA3 | {"torch_dtype": "float16", "quantization_config": {}}
    assert config_problems(LLAMA3, changed, dtype=None) == ['torch_dtype is "float16" (upstream: "bfloat16")']
    assert config_problems(LLAMA3, changed, dtype="float16") == []  # the weights did change dtype


def test_a_legacy_checkpoint_releases_root_config_is_the_upstreams_file_as_it_is(tmp_path: Path) -> None:
    """int8_sq keeps its checkpoint in trt-llm/checkpoints/: the root's config.json, which loads by repo id,
    is the upstream's own bytes; a Hugging Face checkpoint's is the upstream's JSON plus its quantization."""
    upstream, release = tmp_path / "upstream.json", tmp_path / "config.json"
    upstream.write_text(json.dumps(LLAMA3, indent=2) + "\n")
    assert root_config_problems(upstream, release, "trtllm_legacy", None) == ["config.json is missing"]
    release.write_bytes(upstream.read_bytes())
    assert root_config_problems(upstream, release, "trtllm_legacy", None) == []
    assert root_config_problems(upstream, release, "hf_unified", None) == ["quantization_config is missing"]
    release.write_text(json.dumps(LLAMA3) + "\n")
    assert root_config_problems(upstream, release, "trtllm_legacy", None) == [
        "it is not the upstream's file as it is (formatting only)"
    ]
    release.write_text(json.dumps(LLAMA3 | {"quantization_config": {"quant_method": "modelopt"}}))
    assert root_config_problems(upstream, release, "hf_unified", None) == []
    assert root_config_problems(upstream, release, "trtllm_legacy", None) == [
        "it is not the upstream's file as it is (keys quantization_config)"
    ]


def test_the_stored_dtype_is_that_of_the_unquantized_tensors(tmp_path: Path) -> None:
    _safetensors(
        tmp_path / "model.safetensors",
        {
            "embed.weight": "BF16", "norm.weight": "BF16", "q.weight": "F8_E4M3", "q.weight_scale": "F32",
            "q.input_scale": "F32", "k.qweight": "I32", "k.scales": "F16",
        },
    )  # fmt: skip
    assert stored_dtype(tmp_path) == "bfloat16"
    assert stored_dtype(tmp_path / "nothing") is None


def test_a_weights_file_that_is_not_safetensors_is_named_not_read(tmp_path: Path) -> None:
    """Text uploaded over the weights: its first 8 bytes read as a header length would be ~7 EB."""
    for content in (b"not the weights", b"tiny", struct.pack("<Q", 5) + b"[1,2]"):
        (tmp_path / "model.safetensors").write_bytes(content)
        with pytest.raises(ValueError, match="model.safetensors is not a safetensors file"):
            stored_dtype(tmp_path)


def test_keeping_the_upstreams_metadata_replaces_drops_and_adds(tmp_path: Path) -> None:
    upstream, export = tmp_path / "upstream", tmp_path / "export"
    upstream.mkdir()
    export.mkdir()
    (upstream / "config.json").write_text(json.dumps(LLAMA3))
    (upstream / "tokenizer_config.json").write_text('{"tokenizer_class": "PreTrainedTokenizerFast"}\n')
    (upstream / "special_tokens_map.json").write_text("{}\n")
    (upstream / "LICENSE").write_text("licence\n")
    _safetensors(upstream / "model.safetensors", {"embed.weight": "BF16"})
    (export / "config.json").write_text(json.dumps(RESAVED))
    (export / "tokenizer_config.json").write_text('{"tokenizer_class": "TokenizersBackend"}')
    (export / "chat_template.jinja").write_text("{{ messages }}")
    (export / "hf_quant_config.json").write_text("{}")
    (export / "manifest.json").write_text("{}")
    _safetensors(export / "model.safetensors", {"embed.weight": "BF16", "q.weight": "F8_E4M3"})

    assert file_problems(
        {"tokenizer_config.json": upstream / "tokenizer_config.json"}, export, "hf_unified"
    ) == [
        "tokenizer_config.json is not the upstream's (keys tokenizer_class)",
        "chat_template.jinja is not the upstream's (it has none)",
    ]
    record = keep_upstream_metadata(export, upstream, "hf_unified")

    assert record == {
        "kept": ["special_tokens_map.json", "tokenizer_config.json"],
        "dropped": ["chat_template.jinja"],
        "config_keys": ["quantization_config"],
    }
    assert sorted(p.name for p in export.iterdir()) == [
        "config.json", "hf_quant_config.json", "manifest.json", "model.safetensors",
        "special_tokens_map.json", "tokenizer_config.json",
    ]  # fmt: skip
    assert (export / "tokenizer_config.json").read_bytes() == (
        upstream / "tokenizer_config.json"
    ).read_bytes()
    assert json.loads((export / "config.json").read_text()) == release_config(LLAMA3, RESAVED, None)
    upstream_files = {n: upstream / n for n in ("special_tokens_map.json", "tokenizer_config.json")}
    assert file_problems(upstream_files, export, "hf_unified") == []
