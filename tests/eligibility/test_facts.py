"""Model facts from a local folder: config fields, safetensors headers, card metadata, weight files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.eligibility.facts import (
    build_facts,
    estimate_parameters,
    facts_from_dir,
    is_text_generation,
    safetensors_header_counts,
)
from bot.errors import ModelConfigError


@pytest.mark.parametrize(
    ("model", "published"),
    [
        ("mistral", 7_241_732_096),  # Mistral-7B-v0.1: 7.24B
        ("qwen2", 7_615_616_512),  # Qwen2.5-7B: 7.61B (with q/k/v biases the estimate leaves out)
        ("mixtral", 46_702_792_704),  # Mixtral-8x7B: 46.7B
        ("llama3.1", 8_030_261_248),  # Llama-3.1-8B: 8.03B
    ],
)
def test_parameter_estimate_is_close_to_the_published_size(
    configs: dict[str, Any], model: str, published: int
) -> None:
    estimate = estimate_parameters(configs[model])
    assert estimate is not None and abs(estimate - published) / published < 0.01


def test_estimate_counts_an_lm_head_unless_the_config_says_tied(configs: dict[str, Any]) -> None:
    """gemma-3-1b (999,885,952 parameters) ties its embeddings by class default, which config.json omits:
    the estimate then errs high by one embedding matrix, the safe side for the memory check."""
    tied = estimate_parameters(configs["gemma3_text"] | {"tie_word_embeddings": True})
    assert tied is not None and abs(tied - 999_885_952) / 999_885_952 < 0.01
    assert estimate_parameters(configs["gemma3_text"]) == tied + 262144 * 1152


def test_estimate_needs_the_dimensions(configs: dict[str, Any]) -> None:
    assert estimate_parameters({"model_type": "mistral"}) is None
    nested = {"model_type": "gemma3", "text_config": configs["gemma3_text"]}
    assert estimate_parameters(nested) == estimate_parameters(configs["gemma3_text"])


def test_local_folder_facts(make_model: Any, configs: dict[str, Any], st_writer: Any) -> None:
    folder = make_model(
        configs["mistral"], readme="---\nlicense: apache-2.0\npipeline_tag: text-generation\n---\n# M\n"
    )
    st_writer(
        folder / "model.safetensors",
        {"embed": ("BF16", [1000, 64]), "lm_head": ("BF16", [1000, 64]), "norm": ("F32", [64])},
    )
    facts = facts_from_dir(folder)
    assert facts.source == "local" and facts.name == str(folder) and facts.revision is None
    assert (facts.model_type, facts.architectures) == ("mistral", ("MistralForCausalLM",))
    assert facts.modelopt.rows == ("Mistral",) and facts.trtllm.rows == ("Mistral",) and facts.gptqmodel
    assert (facts.parameters, facts.parameters_source) == (128_064, "safetensors headers")
    assert facts.dtype == "bfloat16"
    assert facts.weights == "safetensors" and facts.weight_files == ("model.safetensors",)
    assert (facts.license, facts.pipeline_tag, facts.gated) == ("apache-2.0", "text-generation", None)
    assert facts.text_generation and not facts.custom_code and facts.quantization is None


def test_hand_written_safetensors_file_is_what_the_safetensors_library_reads(
    tmp_path: Path, st_writer: Any
) -> None:
    safe_open = pytest.importorskip("safetensors").safe_open
    path = tmp_path / "w.safetensors"
    st_writer(path, {"a": ("F16", [3, 4]), "b": ("I8", [5])})
    with safe_open(str(path), framework="numpy") as f:
        assert sorted(f.keys()) == ["a", "b"] and list(f.get_slice("a").get_shape()) == [3, 4]
    assert safetensors_header_counts([path]) == {"F16": 12, "I8": 5}


def test_dtype_from_the_weights_when_the_config_has_none(
    make_model: Any, configs: dict[str, Any], st_writer: Any
) -> None:
    config = {k: v for k, v in configs["qwen2"].items() if k != "torch_dtype"}
    folder = make_model(config)
    st_writer(folder / "model-00001-of-00002.safetensors", {"a": ("F16", [10, 10])})
    st_writer(folder / "model-00002-of-00002.safetensors", {"b": ("F16", [10]), "c": ("F32", [4])})
    facts = facts_from_dir(folder)
    assert (facts.parameters, facts.dtype) == (114, "float16")
    transformers5 = facts_from_dir(make_model(config | {"dtype": "bfloat16"}))
    assert transformers5.dtype == "bfloat16"


def test_config_without_weights_falls_back_to_the_estimate(make_model: Any, configs: dict[str, Any]) -> None:
    facts = facts_from_dir(make_model(configs["mixtral"]))
    assert facts.parameters_source == "estimated from config.json dimensions"
    assert facts.weights == "none" and facts.weight_files == ()


def test_pickle_only_weights(make_model: Any, configs: dict[str, Any]) -> None:
    facts = facts_from_dir(
        make_model(configs["mistral"], files={"pytorch_model.bin": b"\x80\x04", "training_args.bin": b""})
    )
    assert facts.weights == "pickle" and facts.weight_files == ("pytorch_model.bin",)


def test_custom_code_and_quantization(make_model: Any, configs: dict[str, Any]) -> None:
    config = configs["mistral"] | {
        "auto_map": {"AutoConfig": "x.C"},
        "quantization_config": {"quant_method": "fp8"},
    }
    facts = facts_from_dir(make_model(config))
    assert facts.custom_code and facts.quantization == "fp8"


@pytest.mark.parametrize(
    ("architectures", "pipeline_tag", "expected"),
    [
        (("MistralForCausalLM",), None, True),
        (("GPT2LMHeadModel",), None, True),
        (("T5WithLMHeadModel",), "text2text-generation", False),
        (("Gemma3ForConditionalGeneration",), "image-text-to-text", False),
        (("BertForMaskedLM",), "fill-mask", False),
        ((), "text-generation", True),
        ((), None, False),
    ],
)
def test_text_generation(architectures: tuple[str, ...], pipeline_tag: str | None, expected: bool) -> None:
    assert is_text_generation(architectures, pipeline_tag) is expected


def test_unknown_model_type_has_no_rows_and_is_not_an_error(make_model: Any, configs: dict[str, Any]) -> None:
    facts = facts_from_dir(make_model(configs["unknown"]))
    assert facts.modelopt.rows == () and facts.trtllm.rows == () and not facts.gptqmodel


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no config.json in"),
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "is not a JSON object"),
    ],
)
def test_bad_config_is_a_model_config_error(tmp_path: Path, content: str | None, message: str) -> None:
    if content is not None:
        (tmp_path / "config.json").write_text(content)
    with pytest.raises(ModelConfigError, match=message) as caught:
        facts_from_dir(tmp_path)
    assert caught.value.exit_code == 2


def test_corrupt_safetensors_header_is_a_model_config_error(make_model: Any, configs: dict[str, Any]) -> None:
    folder = make_model(
        configs["mistral"], files={"model.safetensors": b"\x10\x00\x00\x00\x00\x00\x00\x00{broken"}
    )
    with pytest.raises(ModelConfigError, match="unreadable safetensors header"):
        facts_from_dir(folder)


def test_card_licence_as_list_and_tags(configs: dict[str, Any]) -> None:
    facts = build_facts(configs["mistral"], name="x", source="hub", card={"license": ["mit"]})
    assert facts.license == "mit"
    assert json.loads(json.dumps(facts.license)) == "mit"
