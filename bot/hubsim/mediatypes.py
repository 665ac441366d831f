"""The content type `resolve` answers with: text files as `text/plain; charset=utf-8`, like the Hub serves
the files it keeps in git (cards, configs, code), so a browser shows them instead of downloading them;
everything else (weights, archives, tokenizer models) as `application/octet-stream`.

Decided by the file's name, not its bytes, so a HEAD answers without reading the file. Text is never
served as `text/html`: a repo's HTML file must not run in hubsim's origin.
"""

from __future__ import annotations

from pathlib import PurePosixPath

TEXT = "text/plain; charset=utf-8"
BINARY = "application/octet-stream"

_TEXT_SUFFIXES = frozenset(
    {
        ".md",
        ".markdown",
        ".txt",
        ".rst",
        ".log",
        ".json",
        ".jsonl",
        ".yaml",
        ".yml",
        ".toml",
        ".cfg",
        ".ini",
        ".csv",
        ".tsv",
        ".py",
        ".sh",
        ".js",
        ".ts",
        ".html",
        ".css",
        ".xml",
        ".jinja",
        ".j2",
        ".tiktoken",
        ".gitattributes",
        ".gitignore",
    }
)
_TEXT_NAMES = frozenset({"LICENSE", "NOTICE", "Makefile", "Dockerfile", "merges.txt", "vocab.txt"})


def media_type(path: str) -> str:
    """The `Content-Type` for the file at `path`."""
    name = PurePosixPath(path).name
    suffix = PurePosixPath(name).suffix.lower() or (name.lower() if name.startswith(".") else "")
    return TEXT if suffix in _TEXT_SUFFIXES or name in _TEXT_NAMES else BINARY


def is_text(path: str) -> bool:
    """Whether `path` names a text file."""
    return media_type(path) == TEXT
