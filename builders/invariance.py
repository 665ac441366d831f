"""What a release may change of its upstream: nothing but the weights and what quantization adds.

Every file of the upstream that quantization does not change (tokenizer files, the chat template, the
generation config, special tokens, preprocessor and processor configs, the code `auto_map` names) goes into
the release as the upstream's own bytes at the pinned revision; `config.json` is the upstream's JSON with
only the keys quantization must add or change: `quantization_config`, and the dtype key where the stored
weights' dtype changed. Everything else keeps the upstream's spelling and value, whatever the toolchain's
transformers writes by default (transformers 5 spells `rope_theta`/`rope_scaling` as `rope_parameters`, and
re-saves `tokenizer_config.json` with a `TokenizersBackend` class transformers 4 does not know).

A release whose checkpoint is TensorRT-LLM's legacy one (int8_sq, under trt-llm/checkpoints/) has that
checkpoint's own config.json there, and at its root the upstream's config.json as it is, with no weights.

The build applies the rule to each export (`keep_upstream_metadata`); the build's gate and the publisher check
it (`file_problems`, `root_config_problems`). Standard library only: the bot imports this module too.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import struct
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from builders.readback import short
from builders.spec import MANIFEST_NAME

# What a build downloads of the upstream (builders/fetch.py): everything a loader reads but pickles and code.
FETCH_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.tiktoken", "*.txt", "*.jinja", "tokenizer*"]
PICKLE_PATTERNS = ["*.bin", "*.pt", "*.pth"]
CODE_PATTERNS = ["*.py"]  # fetched only where remote code is trusted
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".h5", ".msgpack", ".onnx")
CONFIG = "config.json"
# The files each toolchain's export owns (besides its weights): they are not the upstream's to keep.
OWNED = {
    "hf_unified": ("hf_quant_config.json",),  # ModelOpt's unified checkpoint
    "gptq": ("quantize_config.json", "quant_log.csv"),  # GPTQModel
    "trtllm_legacy": (CONFIG,),  # a TensorRT-LLM checkpoint's config.json is TensorRT-LLM's own format
}
# Where the checkpoint is not at the repo root (int8_sq: TensorRT-LLM's legacy checkpoint only), the root's
# config.json is the upstream's file as it is: it is what loads by repo id, and no weights go with it.
CONFIG_AS_IS = frozenset({"trtllm_legacy"})
# The build's gate (builders/gate.py) names its checks so; the publisher holds a release whose manifest does
# not record them all passed.
GATE_PREFIX = "invariance: "
GATE_CHECKS = tuple(
    GATE_PREFIX + name
    for name in ("upstream files", CONFIG, "tokenizer and chat template", "quantized scope", "size ratio")
)
QUANTIZATION_KEYS = ("quantization_config",)
DTYPE_KEYS = ("torch_dtype", "dtype")  # transformers 4 wrote torch_dtype, 5 writes dtype; both read either
_LICENCE = re.compile(r"(LICEN[CS]E|USE_POLICY|NOTICE)([._-][\w.-]*)?", re.IGNORECASE)
_NOT_METADATA = frozenset({CONFIG, "README.md", ".gitattributes", MANIFEST_NAME})
# safetensors dtype → the name config.json gives it
_DTYPE_NAMES = {"BF16": "bfloat16", "F16": "float16", "F32": "float32", "F64": "float64"}


def is_licence_file(path: str) -> bool:
    """LICENSE*, USE_POLICY*, NOTICE* at the repo root (a licence in a subfolder is a dataset's, not ours)."""
    return "/" not in path and _LICENCE.fullmatch(path) is not None


def is_weight_file(path: str) -> bool:
    return path.endswith(WEIGHT_SUFFIXES) or path.endswith(".index.json")


def fetched(path: str, trust_remote_code: bool) -> bool:
    """Whether a build downloads this file of the upstream (weights apart, which fetch chooses itself)."""
    patterns = FETCH_PATTERNS + (CODE_PATTERNS if trust_remote_code else [])
    return any(fnmatch.fnmatch(path, p) for p in patterns)


def metadata_files(files: Iterable[str], trust_remote_code: bool = False) -> list[str]:
    """The upstream files a release carries as they are: those at the root that a build downloads, but the
    weights, config.json (merged, `release_config`), the card and the licence files (the publisher copies
    those). A subfolder holds something else (`original/` weights, a dataset), not this checkpoint's
    metadata."""
    return sorted(
        f
        for f in files
        if "/" not in f
        and fetched(f, trust_remote_code)
        and not is_weight_file(f)
        and f not in _NOT_METADATA
        and not is_licence_file(f)
    )


def own_files(folder: Path, kind: str) -> list[str]:
    """The files at the root of an exported folder that must be the upstream's (or absent): all but the
    weights, config.json of a Hugging Face checkpoint, and what the toolchain owns."""
    owned = set(OWNED[kind]) | ({CONFIG} if kind != "trtllm_legacy" else set()) | {MANIFEST_NAME}
    return sorted(
        p.name
        for p in Path(folder).iterdir()
        if p.is_file() and p.name not in owned and not is_weight_file(p.name)
    )


# ------------------------------------------------------------------------------------------ the build's side


def keep_upstream_metadata(
    folder: Path, upstream: Path, kind: str, trust_remote_code: bool = False
) -> dict[str, Any]:
    """Make an exported folder carry the upstream's metadata: its files copied over whatever the exporter
    wrote, the exporter's others removed, and (Hugging Face checkpoints) `release_config` as config.json.
    Returns what was done, for the stage record."""
    folder, upstream = Path(folder), Path(upstream)
    carried = metadata_files(root_files(upstream), trust_remote_code)
    dropped = [name for name in own_files(folder, kind) if name not in carried]
    for name in dropped:
        (folder / name).unlink()
    for name in carried:
        shutil.copyfile(upstream / name, folder / name)  # the snapshot's files are links into the cache
    record: dict[str, Any] = {"kept": carried, "dropped": dropped}
    if kind != "trtllm_legacy":
        original = _read_json(upstream / CONFIG)
        config = release_config(original, _read_json(folder / CONFIG), changed_dtype(folder, upstream))
        (folder / CONFIG).write_text(
            json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        record["config_keys"] = sorted(k for k in config if config[k] != original.get(k, _ABSENT))
    return record


def release_config(upstream: dict[str, Any], exported: dict[str, Any], dtype: str | None) -> dict[str, Any]:
    """The upstream's config with the exporter's quantization keys, and `dtype` (the weights' new dtype, or
    None when it did not change) in the upstream's own dtype key (`torch_dtype` where it names none)."""
    config = dict(upstream)
    for key in QUANTIZATION_KEYS:
        if key in exported:
            config[key] = exported[key]
    if dtype is not None:
        for key in [k for k in DTYPE_KEYS if k in upstream] or [DTYPE_KEYS[0]]:
            config[key] = dtype
    return config


def stored_dtype(folder: Path) -> str | None:
    """The dtype the folder's unquantized tensors are stored in (`bfloat16`), from its safetensors headers."""
    return dominant_dtype(
        (name, meta["dtype"])
        for file in sorted(Path(folder).glob("*.safetensors"))
        for name, meta in safetensors_header(file).items()
    )


def dominant_dtype(tensors: Iterable[tuple[str, str]]) -> str | None:
    """The most common floating dtype of the `*.weight` and `*.bias` tensors among (name, safetensors dtype)
    pairs (quantized weights are integers or FP8, scales are named so)."""
    found: Counter[str] = Counter()
    for name, dtype in tensors:
        if name.rsplit(".", 1)[-1] in ("weight", "bias") and dtype in _DTYPE_NAMES:
            found[_DTYPE_NAMES[dtype]] += 1
    return found.most_common(1)[0][0] if found else None


def changed_dtype(release: Path, upstream: Path) -> str | None:
    """The release's stored dtype where it is not the upstream's; None where it is the same."""
    mine = stored_dtype(release)
    return mine if mine != stored_dtype(upstream) else None


def safetensors_header(file: Path) -> dict[str, dict[str, Any]]:
    """Tensor name → {dtype, shape, data_offsets} from a safetensors file's header (no tensor is read);
    ValueError, naming the file, where it is not a safetensors file (its first 8 bytes are then no length,
    and reading them as one could ask for terabytes)."""
    size = Path(file).stat().st_size
    with open(file, "rb") as f:
        start = f.read(8)
        length = struct.unpack("<Q", start)[0] if len(start) == 8 else size
        if length > size - 8:
            raise ValueError(f"{Path(file).name} is not a safetensors file ({size} bytes, no header)")
        try:
            header = json.loads(f.read(length))
        except ValueError as e:
            raise ValueError(f"{Path(file).name} is not a safetensors file (its header: {e})") from e
    if not isinstance(header, dict):
        raise ValueError(f"{Path(file).name} is not a safetensors file (its header is no JSON object)")
    header.pop("__metadata__", None)
    return dict(header)


# ---------------------------------------------------------------------------------------- the checks' side


def file_problems(upstream: Mapping[str, Path], folder: Path, kind: str) -> list[str]:
    """How the metadata files of an exported folder differ from the upstream's (`upstream`: name → a local
    copy of each of the upstream's `metadata_files`); empty when they are its own bytes, and nothing else."""
    folder = Path(folder)
    problems = []
    for name, original in sorted(upstream.items()):
        mine = folder / name
        if not mine.is_file():
            problems.append(f"{name} is missing")
        elif mine.read_bytes() != Path(original).read_bytes():
            problems.append(f"{name} is not the upstream's ({_how_it_differs(Path(original), mine)})")
    problems += [
        f"{name} is not the upstream's (it has none)"
        for name in own_files(folder, kind)
        if name not in upstream
    ]
    return problems


def config_problems(upstream: dict[str, Any], release: dict[str, Any], dtype: str | None) -> list[str]:
    """How a release's config.json differs from the upstream's beyond the keys quantization adds; `dtype` is
    the release's stored dtype where it differs from the upstream's (its dtype key may then say so)."""

    def allowed(key: str) -> bool:
        return key in QUANTIZATION_KEYS or (key in DTYPE_KEYS and dtype is not None and release[key] == dtype)

    problems = [f"{k} is missing" for k in upstream if k not in release]
    problems += [f"{k} is added" for k in release if k not in upstream and not allowed(k)]
    problems += [
        f"{k} is {short(release[k])} (upstream: {short(upstream[k])})"
        for k in upstream
        if k in release and release[k] != upstream[k] and not allowed(k)
    ]
    if not any(k in release for k in QUANTIZATION_KEYS):
        problems.append("quantization_config is missing")
    return problems


def root_config_problems(upstream: Path, release: Path, kind: str, dtype: str | None) -> list[str]:
    """How the config.json at a release's root differs from the upstream's: the upstream's file as it is
    where the checkpoint lies elsewhere (`CONFIG_AS_IS`), else its JSON but for what quantization adds
    (`config_problems`; `dtype` as there)."""
    if not Path(release).is_file():
        return [f"{CONFIG} is missing"]
    if kind in CONFIG_AS_IS:
        if Path(release).read_bytes() == Path(upstream).read_bytes():
            return []
        return [f"it is not the upstream's file as it is ({_how_it_differs(Path(upstream), Path(release))})"]
    return config_problems(_read_json(upstream), _read_json(release), dtype)


_ABSENT = object()


def root_files(folder: Path) -> list[str]:
    """The names of the files at the root of a folder."""
    return [p.name for p in Path(folder).iterdir() if p.is_file()]


def _read_json(path: Path) -> dict[str, Any]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{Path(path).name} is not a JSON object")
    return data


def _how_it_differs(upstream: Path, mine: Path) -> str:
    """For JSON files, the keys that differ (what a re-serialisation changes); else the sizes."""
    try:
        before, after = _read_json(upstream), _read_json(mine)
    except (ValueError, UnicodeDecodeError):
        return f"{mine.stat().st_size} bytes, the upstream's {upstream.stat().st_size}"
    keys = sorted(k for k in before.keys() | after.keys() if before.get(k, _ABSENT) != after.get(k, _ABSENT))
    return "keys " + ", ".join(keys[:6]) + (", …" if len(keys) > 6 else "") if keys else "formatting only"
