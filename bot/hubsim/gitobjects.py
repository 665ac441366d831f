"""Git object ids, computed the way git computes them.

hubsim stores files content-addressed by their git blob sha1 (what the Hub sends as `ETag` and tree `oid`)
and gives commits the sha1 git would give the same commit object, so every id the client sees is a real
40-hex git id and identical content always gets the identical id.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

FILE_MODE = b"100644"
DIR_MODE = b"40000"


def blob_oid(data: bytes) -> str:
    """The git blob sha1 of `data` (`git hash-object`)."""
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


def tree_oid(files: dict[str, str], prefix: str = "") -> str:
    """The git tree sha1 of the directory `prefix` (``""`` = the root) in a flat path → blob oid map."""
    entries: dict[str, tuple[bytes, str]] = {}
    for path, oid in files.items():
        if not path.startswith(prefix):
            continue
        name, sep, _ = path[len(prefix) :].partition("/")
        if sep:
            if name not in entries:
                entries[name] = (DIR_MODE, tree_oid(files, f"{prefix}{name}/"))
        else:
            entries[name] = (FILE_MODE, oid)
    # git sorts tree entries by name, comparing directories as if their name ended with "/"
    ordered = sorted(entries.items(), key=lambda item: item[0] + ("/" if item[1][0] == DIR_MODE else ""))
    body = b"".join(
        mode + b" " + name.encode() + b"\x00" + bytes.fromhex(oid) for name, (mode, oid) in ordered
    )
    return hashlib.sha1(b"tree %d\x00" % len(body) + body).hexdigest()


def commit_oid(tree: str, parents: list[str], author: str, timestamp: int, message: str) -> str:
    """The git commit sha1 for these fields (author and committer are the same person)."""
    lines = [f"tree {tree}", *(f"parent {p}" for p in parents)]
    person = f"{author} <{author}@users.noreply.hubsim> {timestamp} +0000"
    lines += [f"author {person}", f"committer {person}", "", message]
    body = ("\n".join(lines) + "\n").encode()
    return hashlib.sha1(b"commit %d\x00" % len(body) + body).hexdigest()


def object_id() -> str:
    """A 24-hex id like the Hub's MongoDB ids (repos, discussions, events, webhooks)."""
    return secrets.token_hex(12)


def stable_object_id(kind: str, name: str) -> str:
    """A 24-hex id derived from a name, so users and orgs keep their id across restarts."""
    return hashlib.sha1(f"{kind}:{name}".encode()).hexdigest()[:24]


def now_iso() -> str:
    """The current UTC time as the Hub writes it (`...Z`, milliseconds); the client rejects `+00:00`."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def iso_to_epoch(stamp: str) -> int:
    """Seconds since the epoch of a `...Z` timestamp made by `now_iso`."""
    return int(datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp())
