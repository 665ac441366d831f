"""Diffs and three-way merges of flat file lists (path → blob oid), for pull requests.

A PR's changes are what differs between the commit it branched from (`base`) and its head; merging
applies those changes onto the target branch's tip. A path both sides changed differently is a conflict.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

Files = dict[str, str]


def changes(base: Files, head: Files) -> dict[str, str | None]:
    """Path → new blob oid (None when deleted) for every path that differs."""
    paths = set(base) | set(head)
    return {p: head.get(p) for p in sorted(paths) if base.get(p) != head.get(p)}


def conflicts(base: Files, target: Files, head: Files) -> list[str]:
    """Paths that the PR and the target branch both changed since `base`, to different contents."""
    ours, theirs = changes(base, target), changes(base, head)
    return [p for p in theirs if p in ours and ours[p] != theirs[p]]


def merge(base: Files, target: Files, head: Files) -> Files:
    """`target` with the PR's changes (base → head) applied."""
    merged = dict(target)
    for path, oid in changes(base, head).items():
        if oid is None:
            merged.pop(path, None)
        else:
            merged[path] = oid
    return merged


def unified_diff(base: Files, head: Files, read: Callable[[str], bytes]) -> str:
    """A git-style diff of the PR (text files line by line, binary files named only)."""
    chunks: list[str] = []
    for path, oid in changes(base, head).items():
        old_oid = base.get(path)
        chunks.append(f"diff --git a/{path} b/{path}\n")
        if old_oid is None:
            chunks.append("new file mode 100644\n")
        elif oid is None:
            chunks.append("deleted file mode 100644\n")
        chunks.append(f"index {(old_oid or '0' * 40)[:7]}..{(oid or '0' * 40)[:7]}\n")
        old, new = _text(read, old_oid), _text(read, oid)
        if old is None or new is None:
            chunks.append(f"Binary files a/{path} and b/{path} differ\n")
            continue
        lines = difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"a/{path}" if old_oid else "/dev/null",
            tofile=f"b/{path}" if oid else "/dev/null",
        )
        chunks.extend(
            line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
        )
    return "".join(chunks)


def _text(read: Callable[[str], bytes], oid: str | None) -> str | None:
    """The blob as text; "" for an absent side; None when it is binary."""
    if oid is None:
        return ""
    data = read(oid)
    if b"\x00" in data[:8000]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None
