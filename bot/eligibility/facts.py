"""What the planner needs to know about a model, read from config.json, the file list and the card.

`ModelFacts` is built the same way from a local folder (`facts_from_dir`) or a Hub repo at a revision
(`facts_from_hub`, through `bot.hub.Hub`); nothing here loads weights or imports torch. The parameter count
comes from safetensors headers when there are any (local headers, or the Hub's safetensors metadata), else it
is estimated from the config's dimensions (`estimate_parameters`).
"""

from __future__ import annotations

import json
import struct
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from bot.eligibility.matrices import Matrices, RowMatch, load_matrices
from bot.errors import EntryNotFound, HubError, ModelConfigError

if TYPE_CHECKING:
    from bot.hub import Hub

SAFETENSORS = (".safetensors",)
PICKLE = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_ST_DTYPES = {
    "BF16": "bfloat16",
    "F16": "float16",
    "F32": "float32",
    "F64": "float64",
    "F8_E4M3": "float8_e4m3fn",
}
_CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")


@dataclass(frozen=True)
class ModelFacts:
    """One model at one revision, as far as eligibility is concerned."""

    name: str
    source: str  # "hub" or "local"
    revision: str | None
    architectures: tuple[str, ...]
    model_type: str | None
    modelopt: RowMatch
    trtllm: RowMatch
    gptqmodel: bool
    parameters: int | None
    parameters_source: str | None
    dtype: str | None
    quantization: str | None
    custom_code: bool
    text_generation: bool
    pipeline_tag: str | None
    weights: str  # "safetensors", "pickle" or "none"
    weight_files: tuple[str, ...]
    license: str | None
    gated: str | None  # None, "auto" or "manual"
    vision: bool = False  # a vision-language model: config.json has a vision_config beside its language model


def build_facts(
    config: Mapping[str, Any],
    *,
    name: str,
    source: str,
    revision: str | None = None,
    files: Iterable[str] = (),
    card: Mapping[str, Any] | None = None,
    parameters: tuple[int, str] | None = None,
    weight_dtype: str | None = None,
    gated: str | None = None,
    matrices: Matrices | None = None,
) -> ModelFacts:
    """The pure part: facts from an already-read config, file list and card metadata."""
    m = matrices or load_matrices()
    card = card or {}
    files = tuple(sorted(files))
    architectures = tuple(a for a in config.get("architectures") or () if isinstance(a, str))
    model_type = config.get("model_type") if isinstance(config.get("model_type"), str) else None
    key = m.rows.key_for(model_type, architectures)
    quant = config.get("quantization_config")
    quantization = None
    if quant is not None:
        quantization = (
            str(quant.get("quant_method") or "unknown method") if isinstance(quant, dict) else "yes"
        )
    elif "hf_quant_config.json" in files:
        quantization = "modelopt (hf_quant_config.json)"
    if parameters is None:
        estimate = estimate_parameters(config)
        parameters = (estimate, "estimated from config.json dimensions") if estimate else None
    safetensors = tuple(f for f in files if f.endswith(SAFETENSORS))
    pickles = tuple(f for f in files if f.endswith(PICKLE) and not f.startswith("training_args"))
    pipeline_tag = card.get("pipeline_tag")
    return ModelFacts(
        name=name,
        source=source,
        revision=revision,
        architectures=architectures,
        model_type=model_type,
        modelopt=m.rows.resolve("modelopt", model_type, architectures, config, name),
        trtllm=m.rows.resolve("trtllm", model_type, architectures, config, name),
        gptqmodel=(model_type or key) in m.gptqmodel.model_types,
        parameters=parameters[0] if parameters else None,
        parameters_source=parameters[1] if parameters else None,
        dtype=_config_dtype(config) or weight_dtype,
        quantization=quantization,
        custom_code=bool(config.get("auto_map")),
        text_generation=is_text_generation(architectures, pipeline_tag),
        pipeline_tag=pipeline_tag if isinstance(pipeline_tag, str) else None,
        weights="safetensors" if safetensors else "pickle" if pickles else "none",
        weight_files=safetensors or pickles,
        license=_license(card),
        gated=gated or None,
        vision=isinstance(config.get("vision_config"), dict),
    )


def is_text_generation(architectures: tuple[str, ...], pipeline_tag: Any) -> bool:
    """A causal LM head (`*ForCausalLM`, `*LMHeadModel` but not T5's `*WithLMHeadModel`); without
    architectures, the card's pipeline_tag decides. The builders load with AutoModelForCausalLM."""
    if architectures:
        return any(a.endswith(_CAUSAL_SUFFIXES) and "WithLMHead" not in a for a in architectures)
    return pipeline_tag == "text-generation"


def estimate_parameters(config: Mapping[str, Any]) -> int | None:
    """Parameters of a decoder-only transformer from its config, or None when a dimension is missing.

    With H hidden size, L layers, V vocabulary, n/k query/key-value heads of size d (head_dim, else H/n),
    I the MLP width, E experts of width I_e (moe_intermediate_size, else I) and S shared-expert width:
        attention = H·d·(n + 2k) + n·d·H
        mlp       = 3·H·I                       (gated MLP: gate, up, down)
                    or E·3·H·I_e + H·E + 3·H·S  (mixture of experts: experts, router, shared experts)
        total     = V·H·(1 if tie_word_embeddings else 2) + L·(attention + mlp + 2·H) + H
    It counts a gated MLP even where the model has a plain one and an untied LM head unless the config says
    tied, so it errs high: the memory check should refuse too early rather than run out of memory.
    """
    cfg = config
    if _first(cfg, "hidden_size", "n_embd", "d_model") is None and isinstance(
        config.get("text_config"), Mapping
    ):
        cfg = config["text_config"]
    hidden = _first(cfg, "hidden_size", "n_embd", "d_model")
    layers = _first(cfg, "num_hidden_layers", "n_layer", "num_layers")
    vocab = _first(cfg, "vocab_size")
    heads = _first(cfg, "num_attention_heads", "n_head")
    if not all(isinstance(v, int) and v > 0 for v in (hidden, layers, vocab, heads)):
        return None
    kv_heads = _first(cfg, "num_key_value_heads") or heads
    head_dim = _first(cfg, "head_dim") or hidden // heads
    mlp_width = _first(cfg, "intermediate_size", "ffn_dim", "n_inner") or 4 * hidden
    attention = hidden * head_dim * (heads + 2 * kv_heads) + heads * head_dim * hidden
    experts = _first(cfg, "num_local_experts", "num_experts", "n_routed_experts") or 0
    if experts:
        expert_width = _first(cfg, "moe_intermediate_size") or mlp_width
        shared = (
            _first(cfg, "shared_expert_intermediate_size")
            or (_first(cfg, "n_shared_experts") or 0) * expert_width
        )
        mlp = experts * 3 * hidden * expert_width + hidden * experts + 3 * hidden * shared
    else:
        mlp = 3 * hidden * mlp_width
    tied = bool(cfg.get("tie_word_embeddings", config.get("tie_word_embeddings", False)))
    return vocab * hidden * (1 if tied else 2) + layers * (attention + mlp + 2 * hidden) + hidden


def read_config(path: Path, where: str) -> dict[str, Any]:
    """config.json as a dict; missing, unreadable or not an object → ModelConfigError naming `where`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelConfigError(f"no config.json in {where}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelConfigError(f"config.json of {where} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ModelConfigError(f"config.json of {where} is not a JSON object")
    return data


def card_metadata(readme: str) -> dict[str, Any]:
    """The YAML front matter of a model card (README.md), or {} when it has none or it is not valid."""
    if not readme.startswith("---"):
        return {}
    end = readme.find("\n---", 3)
    try:
        data = yaml.safe_load(readme[3:end]) if end != -1 else None
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def safetensors_header_counts(paths: Iterable[Path]) -> Counter[str]:
    """Parameters per dtype, read from the JSON headers of local .safetensors files (no tensor data read)."""
    counts: Counter[str] = Counter()
    for path in paths:
        with path.open("rb") as f:
            raw = f.read(8)
            if len(raw) != 8:
                raise ModelConfigError(f"{path.name} is not a safetensors file (no header)")
            (length,) = struct.unpack("<Q", raw)
            try:
                header = json.loads(f.read(length))
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise ModelConfigError(f"{path.name} has an unreadable safetensors header: {e}") from None
        for key, tensor in header.items():
            if key != "__metadata__":
                n = 1
                for dim in tensor["shape"]:
                    n *= dim
                counts[tensor["dtype"]] += n
    return counts


def facts_from_dir(directory: Path, matrices: Matrices | None = None) -> ModelFacts:
    """Facts for a model in a local folder (config.json, *.safetensors headers, README.md front matter)."""
    directory = directory.expanduser()
    config = read_config(directory / "config.json", str(directory))
    files = [
        str(p.relative_to(directory))
        for p in directory.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(directory).parts)
    ]
    readme = directory / "README.md"
    card = card_metadata(readme.read_text(encoding="utf-8", errors="replace")) if readme.is_file() else {}
    counts = safetensors_header_counts(directory / f for f in sorted(files) if f.endswith(SAFETENSORS))
    parameters = (sum(counts.values()), "safetensors headers") if counts else None
    return build_facts(
        config,
        name=str(directory),
        source="local",
        files=files,
        card=card,
        parameters=parameters,
        weight_dtype=_dominant_dtype(counts),
        matrices=matrices,
    )


def facts_from_hub(
    hub: Hub, repo_id: str, revision: str | None = None, matrices: Matrices | None = None
) -> ModelFacts:
    """Facts for a Hub repo at a revision (resolved to its sha first, so every read sees the same commit)."""
    info = hub.model_info(repo_id, revision=revision, files_metadata=True)
    sha = info.sha or revision
    where = f"{repo_id}@{sha or revision or 'main'}"
    try:
        config = read_config(hub.download(repo_id, "config.json", revision=sha), where)
    except EntryNotFound:
        raise ModelConfigError(f"no config.json in {where}") from None
    files = [s.rfilename for s in info.siblings or ()]
    card = dict(info.card_data.to_dict()) if info.card_data else {}
    if info.pipeline_tag:
        card.setdefault("pipeline_tag", info.pipeline_tag)
    if not card.get("license"):
        card["license"] = next(
            (t.split(":", 1)[1] for t in info.tags or () if t.startswith("license:")), None
        )
    counts: Counter[str] = Counter()
    source = None
    if info.safetensors and info.safetensors.parameters:
        counts.update(info.safetensors.parameters)
        source = "Hub safetensors metadata"
    elif any(f.endswith(SAFETENSORS) for f in files):
        try:
            counts.update(hub.safetensors_parameters(repo_id, revision=sha))
            source = "safetensors headers"
        except HubError:
            counts.clear()  # the estimate below stands in; the plan names its source
    return build_facts(
        config,
        name=repo_id,
        source="hub",
        revision=sha,
        files=files,
        card=card,
        parameters=(sum(counts.values()), source) if counts and source else None,
        weight_dtype=_dominant_dtype(counts),
        gated=info.gated or None,
        matrices=matrices,
    )


def _first(cfg: Mapping[str, Any], *keys: str) -> Any:
    return next((cfg[k] for k in keys if cfg.get(k) is not None), None)


def _config_dtype(config: Mapping[str, Any]) -> str | None:
    """`dtype` (transformers 5) or `torch_dtype` (earlier), at the top or in text_config."""
    for cfg in (config, config.get("text_config") or {}):
        value = _first(cfg, "dtype", "torch_dtype") if isinstance(cfg, Mapping) else None
        if isinstance(value, str):
            return value.removeprefix("torch.")
    return None


def _dominant_dtype(counts: Counter[str]) -> str | None:
    if not counts:
        return None
    dtype = counts.most_common(1)[0][0]
    return _ST_DTYPES.get(dtype, dtype.lower())


def _license(card: Mapping[str, Any]) -> str | None:
    value = card.get("license")
    if isinstance(value, list):
        value = value[0] if value else None
    return str(value) if value else None
