"""Model folders for the eligibility tests: real config.json shapes of public models, written to tmp dirs.

The configs carry the dimensions of the real checkpoints (so parameter estimates can be checked against the
published sizes); weights are never needed except a tiny safetensors file, written by hand here.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from bot.eligibility.matrices import DATA_DIR

MISTRAL_7B = {
    "architectures": ["MistralForCausalLM"],
    "model_type": "mistral",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "vocab_size": 32000,
    "max_position_embeddings": 32768,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}
QWEN2_5_7B = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_attention_heads": 28,
    "num_hidden_layers": 28,
    "num_key_value_heads": 4,
    "vocab_size": 152064,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}
GEMMA3_1B = {
    "architectures": ["Gemma3ForCausalLM"],
    "model_type": "gemma3_text",
    "hidden_size": 1152,
    "intermediate_size": 6912,
    "num_attention_heads": 4,
    "num_hidden_layers": 26,
    "num_key_value_heads": 1,
    "head_dim": 256,
    "vocab_size": 262144,
    "torch_dtype": "bfloat16",
}
MIXTRAL_8X7B = {
    "architectures": ["MixtralForCausalLM"],
    "model_type": "mixtral",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "num_local_experts": 8,
    "num_experts_per_tok": 2,
    "vocab_size": 32000,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}
GRANITE = {  # in GPTQModel's list, in neither support matrix
    "architectures": ["GraniteForCausalLM"],
    "model_type": "granite",
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_attention_heads": 32,
    "num_hidden_layers": 40,
    "num_key_value_heads": 8,
    "vocab_size": 49155,
    "torch_dtype": "bfloat16",
}
UNKNOWN = {  # a model type nothing knows
    "architectures": ["ZorbleForCausalLM"],
    "model_type": "zorble",
    "hidden_size": 256,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "vocab_size": 1000,
}
LLAMA_3_1_8B = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
    "rope_scaling": {"factor": 8.0, "rope_type": "llama3", "low_freq_factor": 1.0, "high_freq_factor": 4.0},
    "rope_theta": 500000.0,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}

CONFIGS: dict[str, dict[str, Any]] = {
    "mistral": MISTRAL_7B,
    "qwen2": QWEN2_5_7B,
    "gemma3_text": GEMMA3_1B,
    "mixtral": MIXTRAL_8X7B,
    "granite": GRANITE,
    "unknown": UNKNOWN,
    "llama3.1": LLAMA_3_1_8B,
}

_ST_SIZES = {"F32": 4, "F16": 2, "BF16": 2, "I8": 1, "U8": 1}


def write_safetensors(path: Path, tensors: Mapping[str, tuple[str, list[int]]]) -> None:
    """A valid .safetensors file (8-byte header length, JSON header, zeroed data) without torch or numpy."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        size = math.prod(shape) * _ST_SIZES[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + bytes(offset))


MakeModel = Callable[..., Path]


@pytest.fixture
def configs() -> dict[str, dict[str, Any]]:
    """Fresh copies of the model configs above, by short name (tests may edit them)."""
    return json.loads(json.dumps(CONFIGS))


@pytest.fixture
def st_writer() -> Callable[[Path, Mapping[str, tuple[str, list[int]]]], None]:
    return write_safetensors


@pytest.fixture
def make_model(tmp_path: Path) -> MakeModel:
    """`make_model(config, files=..., readme=..., name=...)` → a model folder under tmp_path."""
    counter = iter(range(1_000_000))

    def make(
        config: Mapping[str, Any] | str,
        *,
        files: Mapping[str, bytes] | None = None,
        readme: str | None = None,
        name: str | None = None,
    ) -> Path:
        folder = tmp_path / (name or f"model{next(counter)}")
        folder.mkdir(parents=True)
        text = config if isinstance(config, str) else json.dumps(config)
        (folder / "config.json").write_text(text)
        for filename, content in (files or {}).items():
            (folder / filename).write_bytes(content)
        if readme is not None:
            (folder / "README.md").write_text(readme)
        return folder

    return make


@pytest.fixture
def matrix_copy(tmp_path: Path) -> Callable[[str, Callable[[str], str]], Path]:
    """Copy the shipped matrix files to a tmp dir, rewriting one of them with `edit(text) -> text`."""

    def copy(filename: str, edit: Callable[[str], str]) -> Path:
        folder = tmp_path / f"matrices-{filename}-{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        for source in DATA_DIR.glob("*.yaml"):
            text = source.read_text(encoding="utf-8")
            if source.name == filename:
                edited = edit(text)
                assert edited != text, "the edit did not change the file"
                text = edited
            (folder / source.name).write_text(text, encoding="utf-8")
        return folder

    return copy
