"""The upstream's licence files, copied into the release: Llama-style licences require a copy, not a link."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.hub import Hub

_LICENCE_FILE = re.compile(r"(LICEN[CS]E|USE_POLICY|NOTICE)([._-][\w.-]*)?", re.IGNORECASE)


@dataclass(frozen=True)
class LicenceFile:
    path: str
    content: bytes


def is_licence_file(path: str) -> bool:
    """LICENSE*, USE_POLICY*, NOTICE* at the repo root (a licence in a subfolder is a dataset's, not ours)."""
    return "/" not in path and _LICENCE_FILE.fullmatch(path) is not None


def licence_files(
    hub: Hub, repo_id: str, revision: str, files: list[str] | tuple[str, ...]
) -> list[LicenceFile]:
    """The upstream's licence files at the build's revision, read from the Hub."""
    return [
        LicenceFile(path, hub.download(repo_id, path, revision=revision).read_bytes())
        for path in sorted(files)
        if is_licence_file(path)
    ]
