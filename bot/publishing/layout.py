"""The card's "Artifact Layout": the tree of the files actually uploaded, not the layout the seed shows."""

from __future__ import annotations

from collections import defaultdict
from pathlib import PurePosixPath


def layout_tree(paths: list[str] | tuple[str, ...]) -> str:
    """Repo paths as an indented tree: the root's files first, then each folder, names sorted."""
    children: dict[str, set[str]] = defaultdict(set)
    for path in paths:
        parts = PurePosixPath(path).parts
        for depth in range(len(parts)):
            parent = "/".join(parts[:depth])
            children[parent].add("/".join(parts[: depth + 1]))
    lines: list[str] = []

    def walk(folder: str, indent: int) -> None:
        entries = sorted(children.get(folder, ()))
        files = [e for e in entries if e not in children]
        folders = [e for e in entries if e in children]
        for entry in files:
            lines.append(f"{'  ' * indent}{PurePosixPath(entry).name}")
        for entry in folders:
            lines.append(f"{'  ' * indent}{PurePosixPath(entry).name}/")
            walk(entry, indent + 1)

    walk("", 0)
    return "\n".join(lines)
