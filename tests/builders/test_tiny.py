"""The tiny Llama helper: a real model and tokenizer, published on hubsim with a licence in its card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from builders.tiny import calibration_text_path, heldout_text_path, model_card, push_upstream

pytestmark = pytest.mark.slow


def test_tiny_model_is_a_complete_llama_checkpoint(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["dtype"] == "bfloat16"
    assert (config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]) == (128, 2, 512)
    assert (tiny_model_dir / "model.safetensors").is_file()
    assert not list(tiny_model_dir.glob("*.bin"))
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = tokenizer("Alice was beginning to get very tired")["input_ids"]
    assert tokenizer.decode(ids) == "Alice was beginning to get very tired"
    assert len(ids) < 20  # trained merges, not one token per byte
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert str(model.dtype) == "torch.bfloat16"
    out = model.generate(**tokenizer("Alice", return_tensors="pt"), max_new_tokens=3, do_sample=False)
    assert out.shape[1] == len(tokenizer("Alice")["input_ids"]) + 3


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
