"""Artifacts as the manifest lists them: every file with its size and sha256, and what kind it is."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

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
