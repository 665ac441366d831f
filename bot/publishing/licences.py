"""The upstream's licence files, copied into the release: Llama-style licences require a copy, not a link."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from builders.invariance import is_licence_file

if TYPE_CHECKING:
    from bot.hub import Hub


@dataclass(frozen=True)
class LicenceFile:
    path: str
    content: bytes


def licence_files(
    hub: Hub, repo_id: str, revision: str, files: list[str] | tuple[str, ...]
) -> list[LicenceFile]:
    """The upstream's licence files at the build's revision, read from the Hub."""
    return [
        LicenceFile(path, hub.download(repo_id, path, revision=revision).read_bytes())
        for path in sorted(files)
        if is_licence_file(path)
    ]
