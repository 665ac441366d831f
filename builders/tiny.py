"""Tiny real models for tests and the demo, and the small texts shipped with the builders.

Each model is a genuine ``…ForCausalLM`` (random weights, ``architectures`` set, safetensors) with a real
byte-level BPE tokenizer trained on the shipped calibration text, so every toolchain (ModelOpt, GPTQModel)
runs on it unchanged — only small. toolchains.md explains why ``architectures`` and a saved tokenizer are
required: ModelOpt's export and GPTQModel both break without them.

`build_tiny_llama` saves everything with this machine's transformers. `build_tiny_llama3` and
`build_tiny_qwen2` write a repo as those families' publishers did, with transformers 4.x: the config's RoPE
as `rope_theta` and `rope_scaling`, the tokenizer class and chat template inside `tokenizer_config.json`, a
generation config of their own (and, for Qwen, `vocab.json`/`merges.txt` and an embedding padded beyond the
tokenizer). A release must keep those files as they are (builders/invariance.py).
"""

from __future__ import annotations

import json
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
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=_train_bpe(vocab_size, SPECIAL_TOKENS, unk="<unk>"),
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        model_max_length=2048,
    )


def _train_bpe(vocab_size: int, special_tokens: tuple[str, ...], unk: str | None = None) -> Any:
    """A byte-level BPE (a `tokenizers.Tokenizer`) trained on the calibration text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE(unk_token=unk))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(calibration_text_path().read_text(encoding="utf-8").splitlines(), trainer)
    return bpe


# Both families' chat templates, cut to what a template does (roles, headers, the generation prompt).
_LLAMA3_TEMPLATE = (
    "{{- bos_token }}{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim"
    " + '<|eot_id|>' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
_QWEN2_TEMPLATE = (
    "{%- if messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{%- endif %}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def build_tiny_llama3(
    dest: Path, *, hidden_size: int = 128, num_layers: int = 2, vocab_size: int = 512, seed: int = 0
) -> Path:
    """A tiny Llama-3-style repo (rope_theta 500000, llama3 rope_scaling, PreTrainedTokenizerFast, a chat
    template in tokenizer_config.json, three end-of-turn ids), as Meta's Llama 3.2 repos hold it."""
    specials = (
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eot_id|>",
    )
    from tokenizers import processors

    bpe = _train_bpe(vocab_size, specials)
    ids = {token: bpe.token_to_id(token) for token in specials}
    bos = ("<|begin_of_text|>", ids["<|begin_of_text|>"])
    bpe.post_processor = processors.TemplateProcessing(  # Llama 3's tokenizer.json adds BOS itself
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B", special_tokens=[bos]
    )
    eos = [ids["<|end_of_text|>"], ids["<|eot_id|>"]]
    config = {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": ids["<|begin_of_text|>"],
        "eos_token_id": eos,
        "head_dim": hidden_size // 4,
        "hidden_act": "silu",
        "hidden_size": hidden_size,
        "initializer_range": 0.02,
        "intermediate_size": hidden_size * 2,
        "max_position_embeddings": 131072,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": 4,
        "num_hidden_layers": num_layers,
        "num_key_value_heads": 2,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": {
            "factor": 32.0,
            "high_freq_factor": 4.0,
            "low_freq_factor": 1.0,
            "original_max_position_embeddings": 8192,
            "rope_type": "llama3",
        },
        "rope_theta": 500000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.45.0.dev0",
        "use_cache": True,
        "vocab_size": bpe.get_vocab_size(),
    }
    tokenizer_config = {
        "added_tokens_decoder": _added_tokens(ids),
        "bos_token": "<|begin_of_text|>",
        "chat_template": _LLAMA3_TEMPLATE,
        "clean_up_tokenization_spaces": True,
        "eos_token": "<|eot_id|>",
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": 131072,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    special = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}
    generation = {
        "bos_token_id": ids["<|begin_of_text|>"],
        "do_sample": True,
        "eos_token_id": eos,
        "temperature": 0.6,
        "top_p": 0.9,
        "transformers_version": "4.45.0.dev0",
    }
    files: dict[str, dict[str, Any]] = {
        "tokenizer_config.json": tokenizer_config,
        "special_tokens_map.json": {k: _token_entry(v) for k, v in special.items()},
        "generation_config.json": generation,
    }
    return _write_upstream(Path(dest), bpe, config, files, seed=seed)


def build_tiny_qwen2(
    dest: Path, *, hidden_size: int = 128, num_layers: int = 2, vocab_size: int = 512, seed: int = 0
) -> Path:
    """A tiny Qwen2.5-style repo (rope_theta 1,000,000, Qwen2Tokenizer with vocab.json and merges.txt, no
    BOS, ChatML template with a default system turn, the embedding padded beyond the tokenizer)."""
    specials = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
    bpe = _train_bpe(vocab_size, specials)
    ids = {token: bpe.token_to_id(token) for token in specials}
    config = {
        "architectures": ["Qwen2ForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "hidden_act": "silu",
        "hidden_size": hidden_size,
        "initializer_range": 0.02,
        "intermediate_size": hidden_size * 2,
        "max_position_embeddings": 32768,
        "max_window_layers": num_layers,
        "model_type": "qwen2",
        "num_attention_heads": 4,
        "num_hidden_layers": num_layers,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 1000000.0,
        "sliding_window": 32768,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.43.1",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": (bpe.get_vocab_size() // 64 + 1) * 64,  # Qwen pads its embedding past the tokenizer
    }
    tokenizer_config = {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": _added_tokens(ids),
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "bos_token": None,
        "chat_template": _QWEN2_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": 131072,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }
    generation = {
        "bos_token_id": ids["<|endoftext|>"],
        "pad_token_id": ids["<|endoftext|>"],
        "do_sample": True,
        "eos_token_id": [ids["<|im_end|>"], ids["<|endoftext|>"]],
        "repetition_penalty": 1.05,
        "temperature": 0.7,
        "top_p": 0.8,
        "top_k": 20,
        "transformers_version": "4.37.0",
    }
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    bpe.model.save(str(dest))  # vocab.json and merges.txt, which Qwen repos carry beside tokenizer.json
    files: dict[str, dict[str, Any]] = {
        "tokenizer_config.json": tokenizer_config,
        "generation_config.json": generation,
    }
    return _write_upstream(dest, bpe, config, files, seed=seed)


def _added_tokens(ids: dict[str, int]) -> dict[str, dict[str, Any]]:
    return {str(i): _token_entry(token) | {"special": True} for token, i in ids.items()}


def _token_entry(token: str) -> dict[str, Any]:
    return {"content": token, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}


def _write_upstream(
    dest: Path,
    bpe: Any,
    config: dict[str, Any],
    files: dict[str, dict[str, Any]],
    *,
    seed: int,
    auto_class: str | None = None,
) -> Path:
    """Random weights for `config` saved as safetensors, then the family's own JSON files written over
    whatever this machine's transformers wrote (as the Hub holds them: sorted keys, 2 spaces).
    `auto_class` is the transformers auto class that builds the model (default AutoModelForCausalLM)."""
    import torch
    import transformers
    from transformers import AutoConfig

    def write_json_files() -> None:
        for name, data in {"config.json": config, **files}.items():
            (dest / name).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    dest.mkdir(parents=True, exist_ok=True)
    bpe.save(str(dest / "tokenizer.json"))
    write_json_files()
    torch.manual_seed(seed)
    auto = getattr(transformers, auto_class or "AutoModelForCausalLM")
    model = auto.from_config(AutoConfig.from_pretrained(dest, trust_remote_code=False), dtype=torch.bfloat16)
    model.save_pretrained(dest)
    write_json_files()
    return dest


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
