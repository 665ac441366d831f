"""Tiny repos of the families people upload beyond the dense Llama and Qwen2 ones (tiny.py): mixtures of
experts, a remote-code model, two vision-language models (Qwen2.5-VL, Llava).

Each is written as its publishers' repos hold it: the family's own config class and keys (transformers 4.x
spelling), a byte-level BPE tokenizer trained on the shipped calibration text, random weights saved as
safetensors under the names the Hub's checkpoints use (transformers 5 saves MoE experts per expert, as
`block_sparse_moe.experts.N.w1` for Mixtral and `mlp.experts.N.gate_proj` for Qwen3-MoE). Hidden size 128
and 2 layers, so every format's block size divides every weight; a VLM's vision tower is smaller (hidden 64).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from builders.tiny import _added_tokens, _train_bpe, _write_upstream

FAMILIES = ("mixtral", "qwen3_moe", "phi3_remote", "qwen2_5_vl", "llava")
VISION_FAMILIES = frozenset({"qwen2_5_vl", "llava"})

_CHATML = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
_VISION_SPECIALS = {
    "qwen2_5_vl": ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"),
    "llava": ("<image>",),
}
# Llava's processor template: a message's content is a list of parts, an image part becomes `<image>`.
_LLAVA_TEMPLATE = (
    "{%- for message in messages %}{{- message['role'].upper() + ': ' }}"
    "{%- if message['content'] is string %}{{- message['content'] }}{%- else %}"
    "{%- for part in message['content'] %}{%- if part['type'] == 'image' %}{{- '<image>\\n' }}"
    "{%- else %}{{- part['text'] }}{%- endif %}{%- endfor %}{%- endif %}{{- '\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- 'ASSISTANT:' }}{%- endif %}"
)

# Phi-3's repos carry their own configuration and modeling code, named by auto_map. These two files are that
# code cut to what a tiny model needs: the classes, under the names auto_map gives, on transformers' Phi-3.
PHI3_AUTO_MAP = {
    "AutoConfig": "configuration_phi3.Phi3Config",
    "AutoModelForCausalLM": "modeling_phi3.Phi3ForCausalLM",
}
PHI3_CODE = {
    "configuration_phi3.py": (
        '"""Phi-3 configuration (the repo\'s own code, loaded with trust_remote_code)."""\n\n'
        "from transformers.models.phi3.configuration_phi3 import Phi3Config as _Phi3Config\n\n\n"
        "class Phi3Config(_Phi3Config):\n"
        '    model_type = "phi3"\n'
    ),
    "modeling_phi3.py": (
        '"""Phi-3 model (the repo\'s own code, loaded with trust_remote_code)."""\n\n'
        "from transformers.models.phi3.modeling_phi3 import Phi3ForCausalLM as _Phi3ForCausalLM\n\n"
        "from .configuration_phi3 import Phi3Config\n\n\n"
        "class Phi3ForCausalLM(_Phi3ForCausalLM):\n"
        "    config_class = Phi3Config\n"
    ),
}


def build_tiny_family(dest: Path, family: str, *, vocab_size: int = 512, seed: int = 0) -> Path:
    """Write a tiny repo of `family` (one of FAMILIES) into `dest`; return `dest`."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r} (expected one of {', '.join(FAMILIES)})")
    specials = _SPECIALS + _VISION_SPECIALS.get(family, ())
    bpe = _train_bpe(vocab_size, specials)
    ids = {token: bpe.token_to_id(token) for token in specials}
    config = _config(family, bpe.get_vocab_size(), ids)
    tokenizer_config = {
        "added_tokens_decoder": _added_tokens(ids),
        "bos_token": None,
        "chat_template": _CHATML,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "model_max_length": 4096,
        "pad_token": "<|endoftext|>",
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": None,
    }
    generation = {"bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"], "do_sample": False}
    files: dict[str, dict[str, Any]] = {
        "tokenizer_config.json": tokenizer_config,
        "generation_config.json": generation,
    }
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if family == "phi3_remote":
        for name, code in PHI3_CODE.items():
            (dest / name).write_text(code, encoding="utf-8")
    if family == "qwen2_5_vl":
        files |= _vlm_processor_files()
    if family == "llava":
        files |= _llava_processor_files()
    auto_class = "AutoModelForImageTextToText" if family in VISION_FAMILIES else None
    return _write_upstream(dest, bpe, config, files, seed=seed, auto_class=auto_class)


def _config(family: str, vocab: int, ids: dict[str, int]) -> dict[str, Any]:
    common: dict[str, Any] = {
        "attention_dropout": 0.0,
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "hidden_act": "silu",
        "hidden_size": 128,
        "initializer_range": 0.02,
        "intermediate_size": 256,
        "max_position_embeddings": 4096,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.51.0",
        "use_cache": True,
        "vocab_size": vocab,
    }
    if family == "mixtral":
        return common | {
            "architectures": ["MixtralForCausalLM"],
            "model_type": "mixtral",
            "num_local_experts": 4,
            "num_experts_per_tok": 2,
            "output_router_logits": False,
            "router_aux_loss_coef": 0.02,
            "sliding_window": None,
        }
    if family == "qwen3_moe":
        return common | {
            "architectures": ["Qwen3MoeForCausalLM"],
            "model_type": "qwen3_moe",
            "head_dim": 32,
            "num_experts": 4,
            "num_experts_per_tok": 2,
            "moe_intermediate_size": 128,
            "decoder_sparse_step": 1,
            "mlp_only_layers": [],
            "norm_topk_prob": True,
            "attention_bias": False,
            "sliding_window": None,
            "use_sliding_window": False,
            "max_window_layers": 2,
        }
    if family == "phi3_remote":
        return common | {
            "architectures": ["Phi3ForCausalLM"],
            "model_type": "phi3",
            "auto_map": dict(PHI3_AUTO_MAP),
            "rope_theta": 10000.0,
            "rope_scaling": None,
            "sliding_window": 2047,
            "resid_pdrop": 0.0,
            "embd_pdrop": 0.0,
            "original_max_position_embeddings": 4096,
            "pad_token_id": ids["<|endoftext|>"],
        }
    text = {k: v for k, v in common.items() if k not in ("transformers_version", "torch_dtype")}
    if family == "llava":
        return {
            "architectures": ["LlavaForConditionalGeneration"],
            "model_type": "llava",
            "torch_dtype": "bfloat16",
            "transformers_version": "4.51.0",
            "tie_word_embeddings": False,
            "image_token_index": ids["<image>"],
            "image_seq_length": 4,
            "projector_hidden_act": "gelu",
            "vision_feature_layer": -2,
            "vision_feature_select_strategy": "default",
            "text_config": text | {"architectures": ["LlamaForCausalLM"], "model_type": "llama"},
            "vision_config": {
                "model_type": "clip_vision_model",
                "hidden_size": 64,
                "intermediate_size": 128,
                "num_attention_heads": 2,
                "num_hidden_layers": 2,
                "image_size": 28,
                "patch_size": 14,
                "projection_dim": 64,
                "hidden_act": "quick_gelu",
            },
        }
    return {
        "architectures": ["Qwen2_5_VLForConditionalGeneration"],
        "model_type": "qwen2_5_vl",
        "torch_dtype": "bfloat16",
        "transformers_version": "4.51.0",
        "tie_word_embeddings": False,
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
        "text_config": text
        | {"model_type": "qwen2_5_vl_text", "rope_scaling": {"type": "mrope", "mrope_section": [4, 6, 6]}},
        "vision_config": {
            "depth": 1,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_heads": 2,
            "out_hidden_size": 128,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "fullatt_block_indexes": [0],
            "in_chans": 3,
            "hidden_act": "silu",
        },
    }


def _vlm_processor_files() -> dict[str, dict[str, Any]]:
    """The image processor's and processor's configs of a Qwen2.5-VL repo (small images: 28–56 px)."""
    return {
        "preprocessor_config.json": {
            "do_convert_rgb": True,
            "do_normalize": True,
            "do_rescale": True,
            "do_resize": True,
            "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_std": [0.26862954, 0.26130258, 0.27577711],
            "image_processor_type": "Qwen2VLImageProcessor",
            "max_pixels": 3136,
            "min_pixels": 784,
            "merge_size": 2,
            "patch_size": 14,
            "processor_class": "Qwen2_5_VLProcessor",
            "resample": 3,
            "rescale_factor": 0.00392156862745098,
            "temporal_patch_size": 2,
        },
    }


def _llava_processor_files() -> dict[str, dict[str, Any]]:
    """A Llava repo's CLIP image processor (28 px images: 4 patches), processor and chat template files."""
    return {
        "preprocessor_config.json": {
            "crop_size": {"height": 28, "width": 28},
            "do_center_crop": True,
            "do_convert_rgb": True,
            "do_normalize": True,
            "do_rescale": True,
            "do_resize": True,
            "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_processor_type": "CLIPImageProcessor",
            "image_std": [0.26862954, 0.26130258, 0.27577711],
            "processor_class": "LlavaProcessor",
            "resample": 3,
            "rescale_factor": 0.00392156862745098,
            "size": {"shortest_edge": 28},
        },
        "processor_config.json": {
            "image_token": "<image>",
            "num_additional_image_tokens": 1,
            "patch_size": 14,
            "processor_class": "LlavaProcessor",
            "vision_feature_select_strategy": "default",
        },
        "chat_template.json": {"chat_template": _LLAVA_TEMPLATE},
    }
