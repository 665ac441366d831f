"""What one transformers install reads from a checkpoint folder: its config, its tokenizer, its chat template.

A release must read the same as its upstream wherever it runs, so the same reading is taken of both, in one
environment, and compared (`differences`). The build's gate takes it with the builder's transformers; the
verification after upload also runs this file as a script in each runtime's own transformers line
(builders/runtime_envs.py): `python readback.py UPSTREAM RELEASE [--trust-remote-code]` prints one JSON
object. So it imports only the standard library and transformers (no torch, nothing of quantbot), and runs
under transformers 4.x and 5.x alike.
"""

from __future__ import annotations

import hashlib
import json
import sys
from typing import Any

# A text with what tokenizers disagree on: leading spaces, digits, punctuation, accents, a special token.
SAMPLE_TEXT = " The quick brown fox, 1234 times — naïve café!\n\tIt's 3.14… <|im_end|> done."
CONVERSATION = [
    {"role": "system", "content": "You answer briefly."},
    {"role": "user", "content": "What is 2 + 2?"},
    {"role": "assistant", "content": "4."},
    {"role": "user", "content": "And 3 + 3?"},
]
_ROLES = ("bos_token", "eos_token", "pad_token", "unk_token")
# Keys of a config's dict that say where it was read or by which version, not what the model is, and the
# keys quantization sets (builders/invariance.py checks those in the JSON itself).
_NOT_COMPARED = frozenset(
    {"_name_or_path", "name_or_path", "_commit_hash", "transformers_version", "quantization_config"}
    | {"torch_dtype", "dtype"}
)


def read(folder: str, trust_remote_code: bool = False) -> dict[str, Any]:
    """The config (as `to_dict()`), the tokenizer's vocabulary, ids of the sample text, special tokens and the
    rendered conversation; a part that does not load is its error instead."""
    from transformers import AutoConfig, AutoTokenizer

    found: dict[str, Any] = {}
    try:
        config = AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
        found["config"] = json.loads(json.dumps(config.to_dict(), default=str))
    except Exception as e:  # what this environment makes of the folder is the result
        found["config_error"] = _error(e)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
        found["tokenizer"] = _tokenizer(tokenizer)
    except Exception as e:
        found["tokenizer_error"] = _error(e)
    return found


def _tokenizer(tokenizer: Any) -> dict[str, Any]:
    vocab = sorted(tokenizer.get_vocab().items())
    special = list(tokenizer.all_special_tokens)
    return {
        "class": type(tokenizer).__name__,
        "size": len(tokenizer),
        "vocab_sha256": hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode()).hexdigest(),
        "ids": list(tokenizer(SAMPLE_TEXT)["input_ids"]),
        "special": dict(zip(special, tokenizer.convert_tokens_to_ids(special), strict=True)),
        "roles": {name: getattr(tokenizer, name, None) for name in _ROLES},
        "chat": _chat(tokenizer),
    }


def _chat(tokenizer: Any) -> str | None:
    """The conversation rendered with the tokenizer's chat template (None: it has none)."""
    if not getattr(tokenizer, "chat_template", None):
        return None
    try:
        return str(tokenizer.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True))
    except Exception as e:  # a template that refuses the conversation refuses it for both
        return f"error: {_error(e)}"


def _error(e: Exception) -> str:
    return f"{type(e).__name__}: {e}".strip()[:300]


def differences(upstream: dict[str, Any], release: dict[str, Any]) -> list[str]:
    """How the release's reading differs from the upstream's, in one environment; empty when the same."""
    problems = []
    config, original = release.get("config"), upstream.get("config")
    if config is not None and original is not None:
        # RoPE first: what silently moves every position
        keys = sorted((config.keys() | original.keys()) - _NOT_COMPARED, key=lambda k: ("rope" not in k, k))
        problems += [
            f"{k} reads {short(config.get(k))} (upstream: {short(original.get(k))})"
            for k in keys
            if config.get(k) != original.get(k)
        ]
    for part in ("config", "tokenizer"):
        if f"{part}_error" in release and f"{part}_error" not in upstream:
            problems.append(f"its {part} does not load: {release[f'{part}_error'][:160]}")
    mine, theirs = release.get("tokenizer"), upstream.get("tokenizer")
    if mine is not None and theirs is not None:
        names = {"size": "vocabulary size", "vocab_sha256": "vocabulary", "ids": "token ids of the sample"}
        names |= {"special": "special tokens", "roles": "special token roles", "chat": "rendered chat"}
        problems += [f"{label} differ" for key, label in names.items() if mine.get(key) != theirs.get(key)]
    return problems


def summary(reading: dict[str, Any]) -> str:
    """What was compared, in words: `RoPE θ 500000.0 (llama3), vocabulary 512, 31 ids, 5 special tokens`."""
    parts = []
    config = reading.get("config")
    if config is not None:
        rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
        theta = config.get("rope_theta") or rope.get("rope_theta")
        kind = rope.get("rope_type") or rope.get("type") or "default"
        parts.append(f"RoPE θ {theta} ({kind})" if theta else "config")
    tokenizer = reading.get("tokenizer")
    if tokenizer is not None:
        parts.append(f"vocabulary {tokenizer['size']}")
        parts.append(f"{len(tokenizer['ids'])} token ids")
        parts.append(f"{len(tokenizer['special'])} special tokens")
        if tokenizer["chat"] is not None:
            parts.append("chat template")
    return ", ".join(parts) or "nothing loads"


def short(value: Any) -> str:
    """A value as JSON, cut for a one-line message."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def main(argv: list[str]) -> int:
    """`readback.py UPSTREAM RELEASE [--trust-remote-code]`: both readings and the version, one JSON line."""
    import transformers

    trust = "--trust-remote-code" in argv
    upstream, release = [a for a in argv[1:] if not a.startswith("--")][:2]
    print(
        json.dumps(
            {
                "transformers": transformers.__version__,
                "upstream": read(upstream, trust),
                "release": read(release, trust),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
