"""Artifacts as the manifest lists them: every file with its size and sha256, and what kind it is."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

# Where a release keeps TensorRT-LLM's files; the unified HF checkpoint is at the repo root.
LEGACY = Path("trt-llm") / "checkpoints"  # legacy checkpoints: int8_sq, and the input of trtllm-build
ENGINES = Path("trt-llm") / "engines"
_HOST_PATH = re.compile(r"^(?:[A-Za-z]:)?[/\\\\](?:[^\s/\\\\{}<>|]+[/\\\\])+[^\s/\\\\{}<>|]*$")
_TOKENIZER_FILES = ("tokenizer", "special_tokens_map", "vocab", "merges", "chat_template")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def kind_of(path: Path, engine: bool = False) -> str:
    if engine:
        return "engine"
    if path.name.startswith(_TOKENIZER_FILES) or path.suffix in (".model", ".tiktoken"):
        return "tokenizer"
    if path.suffix in (".safetensors", ".engine"):
        return "checkpoint"
    return "config"


def hash_folder(root: Path, folder: Path | str, engine: bool = False) -> list[dict[str, Any]]:
    """Every file under ``root/folder`` (paths relative to ``root``), in name order."""
    base = Path(root) / folder
    files = sorted(p for p in base.rglob("*") if p.is_file()) if base.is_dir() else []
    return [
        {
            "path": p.relative_to(root).as_posix(),
            "size": p.stat().st_size,
            "sha256": sha256_file(p),
            "kind": kind_of(p, engine),
        }
        for p in files
    ]


def clear_output(out: Path, keep: tuple[str, ...]) -> None:
    """Remove everything in the output dir but ``keep``: it is the repo to publish, so a previous
    attempt's files (another export, engines made from it) must not survive into this one."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.iterdir():
        if stale.name not in keep:
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()


def move_into(source: Path, target: Path) -> None:
    """Move the contents of ``source`` into the folder ``target``, then remove ``source``."""
    target.mkdir(parents=True, exist_ok=True)
    for item in sorted(source.iterdir()):
        item.replace(target / item.name)
    source.rmdir()


def scrub_host_paths(folder: Path) -> list[str]:
    """Null every value in the folder's JSON files that is an absolute path of this machine.

    Toolchains record where they worked (GPTQModel keeps its temporary ``offload_to_disk_path`` in
    config.json); a published file must not carry the build machine's paths. Returns ``file:key`` of
    each value removed, for the stage record.
    """
    removed: list[str] = []
    for file in sorted(Path(folder).glob("*.json")):
        data = json.loads(file.read_text(encoding="utf-8"))
        found = _null_paths(data, file.name)
        if found:
            file.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            removed += found
    return removed


def _null_paths(node: Any, where: str) -> list[str]:
    found: list[str] = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in list(items):
        if isinstance(value, str) and _HOST_PATH.match(value):
            node[key] = None
            found.append(f"{where}:{key}")
        elif isinstance(value, (dict, list)):
            found += _null_paths(value, f"{where}:{key}")
    return found
