"""The tiny model helpers: real models and tokenizers (Llama-3 and Qwen2.5 style), published on hubsim with a
licence in the card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from builders.tiny import (
    build_tiny_qwen2,
    calibration_text_path,
    heldout_text_path,
    model_card,
    push_upstream,
)

pytestmark = pytest.mark.slow


def test_tiny_model_is_a_complete_llama_checkpoint(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["torch_dtype"] == "bfloat16"
    assert (config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]) == (128, 2, 512)
    assert (tiny_model_dir / "model.safetensors").is_file()
    assert not list(tiny_model_dir.glob("*.bin"))
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = tokenizer("Alice was beginning to get very tired", add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == "Alice was beginning to get very tired"
    assert len(ids) < 20  # trained merges, not one token per byte
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert str(model.dtype) == "torch.bfloat16"
    out = model.generate(**tokenizer("Alice", return_tensors="pt"), max_new_tokens=3, do_sample=False)
    assert out.shape[1] == len(tokenizer("Alice")["input_ids"]) + 3


def test_the_llama3_style_repo_is_written_as_transformers_4_wrote_it(tiny_model_dir: Path) -> None:
    """The files as a Llama 3 repo holds them, not as this machine's transformers 5 would save them."""
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert (config["rope_theta"], config["rope_scaling"]["rope_type"]) == (500000.0, "llama3")
    assert "rope_parameters" not in config and config["transformers_version"].startswith("4.")
    tokenizer_config = json.loads((tiny_model_dir / "tokenizer_config.json").read_text())
    assert tokenizer_config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert "<|start_header_id|>" in tokenizer_config["chat_template"]
    assert not (tiny_model_dir / "chat_template.jinja").exists()
    assert json.loads((tiny_model_dir / "generation_config.json").read_text())["temperature"] == 0.6


def test_the_qwen2_style_repo_has_its_families_conventions(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    model = build_tiny_qwen2(tmp_path / "qwen")
    config = json.loads((model / "config.json").read_text())
    assert (config["architectures"], config["rope_theta"]) == (["Qwen2ForCausalLM"], 1000000.0)
    assert {"vocab.json", "merges.txt", "tokenizer.json", "model.safetensors"} <= {
        p.name for p in model.iterdir()
    }
    tokenizer = AutoTokenizer.from_pretrained(model)
    assert config["vocab_size"] > len(tokenizer)  # the embedding is padded past the tokenizer, as Qwen's
    assert tokenizer.bos_token is None and tokenizer.eos_token == "<|im_end|>"
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    assert chat.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>")


def test_texts_are_shipped_distinct_and_small() -> None:
    calibration, heldout = calibration_text_path().read_text(), heldout_text_path().read_text()
    assert "Alice" in calibration and "Sherlock Holmes" in heldout
    assert not set(heldout.split("\n\n")) & set(calibration.split("\n\n"))
    assert calibration_text_path().stat().st_size + heldout_text_path().stat().st_size < 200_000


def test_upstream_repo_carries_the_model_and_its_licence(hubsim: Any, tiny_upstream: Any) -> None:
    info = hubsim.api.model_info(tiny_upstream.repo_id, files_metadata=True)
    assert info.sha == tiny_upstream.sha
    names = {s.rfilename for s in info.siblings}
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= names
    assert info.card_data["license"] == "apache-2.0"
    assert not (tiny_upstream.model_dir / "README.md").exists()  # the caller's folder is left untouched


def test_push_upstream_takes_a_licence_and_extra_card_data(
    hubsim: Any, tiny_model_dir: Path, repo_factory: Any
) -> None:
    repo_id = repo_factory("tiny-mit")
    sha = push_upstream(
        tiny_model_dir, repo_id, endpoint=hubsim.url, token=hubsim.token, license="mit",
        card_data={"language": ["en"], "tags": ["tiny"]},
    )  # fmt: skip
    info = hubsim.api.model_info(repo_id)
    assert info.sha == sha
    assert info.card_data["license"] == "mit"
    assert info.card_data["language"] == ["en"]
    assert "tiny" in info.tags


def test_model_card_front_matter() -> None:
    card = model_card("other", {"license_name": "custom"}, title="x")
    assert card.startswith("---\nlicense: other\nlicense_name: custom\n---\n")
