"""Which matrix rows a config maps to, including the ambiguous families (docs/eligibility.md)."""

from __future__ import annotations

from typing import Any

import pytest

from bot.eligibility.matrices import load_matrices

LLAMA = {"architectures": ["LlamaForCausalLM"], "model_type": "llama"}


def rows(config: dict[str, Any], name: str = "org/model") -> tuple[tuple[str, ...], tuple[str, ...]]:
    m = load_matrices()
    model_type = config.get("model_type")
    archs = tuple(config.get("architectures") or ())
    return (
        m.rows.resolve("modelopt", model_type, archs, config, name).rows,
        m.rows.resolve("trtllm", model_type, archs, config, name).rows,
    )


@pytest.mark.parametrize(
    ("extra", "name", "modelopt", "trtllm"),
    [
        pytest.param(
            {"vocab_size": 128256, "rope_scaling": {"rope_type": "llama3", "factor": 8.0}},
            "meta-llama/Llama-3.1-8B",
            "LLAMA 3, 3.1, 3.3",
            ("LLaMA 3", "LLaMA"),
            id="llama-3.1",
        ),
        pytest.param(
            {"vocab_size": 128256, "rope_scaling": {"rope_type": "llama3", "factor": 32.0}},
            "meta-llama/Llama-3.2-1B",
            "LLAMA 3, 3.1, 3.3",
            ("LLaMA 3", "LLaMA"),
            id="llama-3.2",
        ),
        pytest.param(
            {"vocab_size": 128256, "max_position_embeddings": 8192, "rope_theta": 500000.0},
            "meta-llama/Meta-Llama-3-8B",
            "LLAMA 3, 3.1, 3.3",
            ("LLaMA 3", "LLaMA"),
            id="llama-3.0-by-vocab",
        ),
        pytest.param(
            {"vocab_size": 128256, "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0}},
            "saved-by-transformers-5",
            "LLAMA 3, 3.1, 3.3",
            ("LLaMA 3", "LLaMA"),
            id="llama-3-transformers-5-rope-parameters",
        ),
        pytest.param(
            {"vocab_size": 32000, "max_position_embeddings": 4096},
            "meta-llama/Llama-2-7b-hf",
            "LLAMA 2",
            ("LLaMA-v2",),
            id="llama-2",
        ),
        pytest.param(
            {"vocab_size": 32016, "max_position_embeddings": 16384, "rope_theta": 1000000},
            "someone/my-coder",
            "CodeLlama",
            ("LLaMA-v2",),
            id="codellama-by-config",
        ),
        pytest.param(
            {"vocab_size": 32000, "max_position_embeddings": 4096},
            "codellama/CodeLlama-7b-hf",
            "CodeLlama",
            ("LLaMA-v2",),
            id="codellama-by-name",
        ),
        pytest.param(
            {"vocab_size": 32000, "max_position_embeddings": 2048},
            "huggyllama/llama-7b",
            "LLAMA 2",
            ("LLaMA",),
            id="llama-1",
        ),
        pytest.param(
            {"vocab_size": 49152, "max_position_embeddings": 8192},
            "HuggingFaceTB/SmolLM2-1.7B",
            "LLAMA 2",
            ("LLaMA",),
            id="other-llama-architecture",
        ),
    ],
)
def test_llama_generations(extra: dict[str, Any], name: str, modelopt: str, trtllm: tuple[str, ...]) -> None:
    assert rows(LLAMA | extra, name) == ((modelopt,), trtllm)


@pytest.mark.parametrize(
    ("config", "name", "expected"),
    [
        ({"model_type": "mistral"}, "x", (("Mistral",), ("Mistral",))),
        ({"model_type": "mixtral"}, "x", (("Mixtral 8x7B, 8x22B",), ("Mixtral",))),
        ({"model_type": "qwen2"}, "Qwen/Qwen2.5-7B", (("QWen 2, 2.5",), ("Qwen-2/2.5",))),
        ({"model_type": "qwen2"}, "Qwen/QwQ-32B", (("QwQ",), ("Qwen-2/2.5",))),
        ({"model_type": "qwen3"}, "Qwen/Qwen3-8B", ((), ("Qwen-3",))),
        ({"model_type": "qwen3_moe"}, "x", (("QWen3 MOE",), ("Qwen-3",))),
        ({"model_type": "gemma3_text"}, "google/gemma-3-1b-it", (("Gemma 3 1B",), ("Gemma 3",))),
        ({"model_type": "gemma"}, "google/gemma-7b", (("Gemma 2B, 7B",), ())),
        ({"model_type": "gemma2"}, "google/gemma-2-9b", ((), ())),
        ({"model_type": "phi3"}, "microsoft/phi-4", (("Phi-1,2,3,4",), ("Phi",))),
        ({"model_type": "phimoe"}, "x", (("Phi-3.5 MOE",), ())),
        ({"model_type": "llama4_text"}, "x", (("LLAMA 4",), ("LLaMA 4",))),
        ({"model_type": "nemotron-nas", "hidden_size": 8192}, "x", (("Llama-Nemotron Super",), ())),
        ({"model_type": "nemotron-nas", "hidden_size": 16384}, "x", (("Llama-Nemotron Ultra",), ())),
        ({"model_type": "nemotron"}, "nvidia/Nemotron-4-Minitron-4B", (("Minitron",), ())),
        ({"model_type": "nemotron"}, "nvidia/nemotron-3-8b", (("Nemotron 8B",), ())),
        (
            {"model_type": "falcon", "new_decoder_architecture": True},
            "tiiuae/falcon-40b",
            (("Falcon 40B, 180B",), ()),
        ),
        (
            {"model_type": "falcon", "new_decoder_architecture": False},
            "tiiuae/falcon-7b",
            (("Falcon 7B",), ()),
        ),
        ({"model_type": "deepseek_v3"}, "x", ((), ("DeepSeek-R1",))),
        ({"model_type": "blip-2", "text_config": {"model_type": "opt"}}, "x", ((), ("BLIP2-OPT",))),
        ({"model_type": "zorble"}, "x", ((), ())),
    ],
)
def test_model_types(
    config: dict[str, Any], name: str, expected: tuple[tuple[str, ...], tuple[str, ...]]
) -> None:
    assert rows(config, name) == expected


def test_architecture_decides_when_config_has_no_model_type() -> None:
    assert rows({"architectures": ["MistralForCausalLM"]}) == (("Mistral",), ("Mistral",))


def test_a_boolean_condition_does_not_match_an_integer() -> None:
    """`new_decoder_architecture: true` must not match a config value of 1 (True == 1 in Python)."""
    assert rows({"model_type": "falcon", "new_decoder_architecture": 1}) == (("Falcon 7B",), ())


def test_why_explains_the_rule_that_matched() -> None:
    m = load_matrices()
    match = m.rows.resolve(
        "trtllm", "llama", (), LLAMA | {"vocab_size": 32000, "max_position_embeddings": 2048}, "x"
    )
    assert "no recognised generation" in match.why
    assert "no row" in m.rows.resolve("modelopt", "zorble", (), {}, "x").why
