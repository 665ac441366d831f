"""A tiny real Llama for tests and the demo, and the small texts shipped with the builders.

The model is a genuine ``LlamaForCausalLM`` (random weights, ``architectures`` set, safetensors) with a real
byte-level BPE tokenizer trained on the shipped calibration text, so every toolchain (ModelOpt, GPTQModel)
runs on it unchanged — only small. toolchains.md explains why ``architectures`` and a saved tokenizer are
required: ModelOpt's export and GPTQModel both break without them.
"""

from __future__ import annotations

import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>")


def calibration_text_path() -> Path:
    """The shipped calibration text (Carroll, *Alice's Adventures in Wonderland*, ch. I–VII)."""
    return Path(str(resources.files("builders") / "data" / "calibration.txt"))


def heldout_text_path() -> Path:
    """The shipped held-out evaluation text (Doyle, "A Scandal in Bohemia"); never used to calibrate."""
    return Path(str(resources.files("builders") / "data" / "heldout.txt"))


def build_tiny_llama(
    dest: Path,
    *,
    hidden_size: int = 128,
    num_layers: int = 2,
    vocab_size: int = 512,
    dtype: str = "bfloat16",
    seed: int = 0,
) -> Path:
    """Write a tiny random ``LlamaForCausalLM`` and its tokenizer into ``dest``; return ``dest``.

    ``hidden_size`` is a multiple of 128 by default so that every quantization block size (AWQ 128,
    NVFP4 16, GPTQ 128) divides the weight shapes, as it does in real models.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer(vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        architectures=["LlamaForCausalLM"],
        dtype=dtype,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(getattr(torch, dtype))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return dest


def _train_tokenizer(vocab_size: int) -> Any:
    """A byte-level BPE trained on the calibration text, wrapped as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(calibration_text_path().read_text(encoding="utf-8").splitlines(), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        model_max_length=2048,
    )


def model_card(license: str = "apache-2.0", card_data: dict[str, Any] | None = None, title: str = "") -> str:
    """A README with YAML front matter carrying the licence (and any extra card metadata)."""
    import yaml

    meta = {"license": license, **(card_data or {})}
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).strip()
    heading = title or "Tiny Llama"
    return (
        f"---\n{front}\n---\n\n# {heading}\n\n"
        "A tiny randomly initialised LlamaForCausalLM (hidden 128, 2 layers) made by quantbot for tests.\n"
    )


def push_upstream(
    model_dir: Path,
    repo_id: str,
    *,
    endpoint: str | None = None,
    token: str | None = None,
    license: str = "apache-2.0",
    card_data: dict[str, Any] | None = None,
    private: bool = False,
) -> str:
    """Publish ``model_dir`` as an upstream model repo with a README; return the commit sha.

    The folder is staged in a temporary copy so the caller's directory is left untouched.
    """
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint, token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="quantbot-upstream-") as tmp:
        staged = Path(tmp) / "repo"
        shutil.copytree(model_dir, staged)
        (staged / "README.md").write_text(
            model_card(license, card_data, title=repo_id.split("/")[-1]), encoding="utf-8"
        )
        commit = api.upload_folder(
            folder_path=staged, repo_id=repo_id, repo_type="model", commit_message="Upload tiny Llama"
        )
    return commit.oid
