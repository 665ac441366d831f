"""What the Hub derives from a repo's files: `cardData` (README front matter), `tags`, `config`.

The derivations copy what the Hub shows for transformers models: the library, `safetensors`, the
`model_type`, the pipeline, card tags, languages, `dataset:`, `base_model:<id>` and
`base_model:<relation>:<id>` (relation from `base_model_relation`, else inferred like the Hub does),
`license:` and `region:us`. That is what `list_models(filter="base_model:quantized:<id>")` searches.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import yaml

_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)(?:\r?\n)?^---[ \t]*$", re.S | re.M)
_RELATIONS = ("adapter", "merge", "quantized", "finetune")
_TOKENIZER_KEYS = ("bos_token", "eos_token", "pad_token", "unk_token", "chat_template")


class CardError(ValueError):
    """README front matter that is not valid YAML, or not a mapping."""


def card_data(readme: str) -> dict[str, Any]:
    """The README's YAML front matter as a dict ({} when there is none)."""
    match = _FRONT_MATTER.match(readme)
    if match is None:
        return {}
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError as e:
        raise CardError(f"Invalid YAML in README.md metadata: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CardError("README.md metadata must be a YAML mapping")
    return json_safe(data)


def card_text(readme: str) -> str:
    """The README without its front matter: what the Hub renders as the card."""
    match = _FRONT_MATTER.match(readme)
    return readme[match.end() :].lstrip("\r\n") if match else readme


def json_file(content: bytes | None) -> dict[str, Any] | None:
    """A JSON object file's content, or None when absent or not a JSON object."""
    if content is None:
        return None
    try:
        data = json.loads(content)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return json_safe(data) if isinstance(data, dict) else None


def json_safe(value: Any) -> Any:
    """`value` with what JSON cannot carry made into strings: YAML dates, NaN and infinities, odd keys."""
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, str) else k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, str | int | float):
        return value
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def config_summary(config: dict[str, Any] | None, tokenizer_config: dict[str, Any] | None) -> dict[str, Any]:
    """The subset of config.json (and tokenizer_config.json) the Hub returns as `config`."""
    summary: dict[str, Any] = {}
    for key in ("architectures", "model_type", "quantization_config"):
        if config and key in config:
            summary[key] = config[key]
    if tokenizer_config:
        picked = {k: tokenizer_config[k] for k in _TOKENIZER_KEYS if k in tokenizer_config}
        if picked:
            summary["tokenizer_config"] = picked
    return summary


def library_name(card: dict[str, Any], config: dict[str, Any] | None) -> str | None:
    """The card's `library_name`, else `transformers` when there is a config.json."""
    name = card.get("library_name")
    return name if isinstance(name, str) else ("transformers" if config else None)


def pipeline_tag(card: dict[str, Any], config: dict[str, Any] | None) -> str | None:
    """The card's `pipeline_tag`, else `text-generation` for causal LMs."""
    tag = card.get("pipeline_tag")
    if isinstance(tag, str):
        return tag
    architectures = (config or {}).get("architectures") or []
    if any(isinstance(a, str) and a.endswith("ForCausalLM") for a in architectures):
        return "text-generation"
    return None


def tags(card: dict[str, Any], config: dict[str, Any] | None, paths: list[str]) -> list[str]:
    """The tags the Hub would show for a repo with this card, config and file list."""
    found: list[str] = []
    found += [t for t in (library_name(card, config),) if t]
    if any(p.endswith(".safetensors") for p in paths):
        found.append("safetensors")
    if config and isinstance(config.get("model_type"), str):
        found.append(config["model_type"])
    found += [t for t in (pipeline_tag(card, config),) if t]
    found += _strings(card.get("tags"))
    found += _strings(card.get("language"))
    found += [f"dataset:{d}" for d in _strings(card.get("datasets"))]
    relation, bases = lineage(card, config, paths)
    if bases:
        found += [f"base_model:{b}" for b in bases] + [f"base_model:{relation}:{b}" for b in bases]
    found += [f"license:{lic}" for lic in _strings(card.get("license"))]
    found.append("region:us")
    return list(dict.fromkeys(found))


def lineage(
    card: dict[str, Any], config: dict[str, Any] | None, paths: list[str]
) -> tuple[str | None, list[str]]:
    """The card's base models and the relation to them (None and [] for a model that names none)."""
    bases = _strings(card.get("base_model"))
    return (_relation(card, config, paths, bases) if bases else None), bases


def _relation(card: dict[str, Any], config: dict[str, Any] | None, paths: list[str], bases: list[str]) -> str:
    declared = card.get("base_model_relation")
    if declared in _RELATIONS:
        return str(declared)
    if "adapter_config.json" in paths:
        return "adapter"
    if (config and "quantization_config" in config) or any(p.endswith(".gguf") for p in paths):
        return "quantized"
    return "merge" if len(bases) > 1 else "finetune"


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []
