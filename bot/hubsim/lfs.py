"""Git LFS as the Hub does it: which files go to LFS, pointer files, and signed storage URLs.

Which upload mode preupload answers (the Hub's rule, as its users meet it):
- a path matched by a `filter=lfs` pattern of the revision's `.gitattributes` (a new repo's first commit
  tracks `*.safetensors`, `*.bin`, ... like the Hub's) is `lfs`;
- so is a file larger than 10 MiB ("Your push was rejected because it contains files larger than 10 MiB",
  huggingface_hub issue #91; hub-docs repositories-getting-started: "files larger than 10MB"), and a
  binary file larger than 1 MiB ("The hub now prevents binary files over 1MB from being committed (unless
  LFS)", huggingface_hub PR #657; julien-c in issue #687: "the file size threshold for binary files only
  [is] 1MB ... Non binary files still 10MB"). Binary means a NUL byte in the 512-byte sample the client
  sends, git's own test;
- everything else is `regular` (the client itself sends empty files as regular).

An LFS file lives in the commit as a pointer (git-lfs spec v1) whose git blob oid is the tree `oid`; its
content is kept by sha256. Storage URLs (upload `href`, download redirect `Location`) are signed like the
Hub's presigned S3/CDN URLs: only a URL hubsim handed out opens the object.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_REGULAR_SIZE = 10 * 1024 * 1024
MAX_REGULAR_BINARY_SIZE = 1024 * 1024
SAMPLE_SIZE = 512
POINTER_VERSION = "https://git-lfs.github.com/spec/v1"
STORAGE_PREFIX = "_lfs-storage"  # repo namespaces never start with "_", so this never shadows a repo
_POINTER = re.compile(rf"version {re.escape(POINTER_VERSION)}\noid sha256:([0-9a-f]{{64}})\nsize (\d+)\n")
_SHA256 = re.compile(r"[0-9a-f]{64}")

TOO_LARGE = (
    "Your push was rejected because it contains files larger than 10 MiB. "
    "Please use https://git-lfs.github.com/ to store large files."
)
BINARY = (
    "Your push was rejected because it contains binary files. "
    "Please use https://huggingface.co/docs/hub/xet to store binary files."
)


@dataclass(frozen=True)
class Pointer:
    """What an LFS pointer file says: the content's sha256 and size."""

    sha256: str
    size: int

    def text(self) -> bytes:
        """The pointer file, byte for byte as git-lfs writes it."""
        return f"version {POINTER_VERSION}\noid sha256:{self.sha256}\nsize {self.size}\n".encode()


def parse_pointer(data: bytes) -> Pointer | None:
    """The pointer `data` is, or None when it is an ordinary file."""
    if len(data) > 200:
        return None
    match = _POINTER.fullmatch(data.decode("ascii", "replace"))
    return Pointer(match.group(1), int(match.group(2))) if match else None


def is_sha256(text: object) -> bool:
    return isinstance(text, str) and bool(_SHA256.fullmatch(text))


def lfs_patterns(gitattributes: bytes | None) -> list[tuple[str, bool]]:
    """`(pattern, tracked)` per line of a `.gitattributes` that sets or unsets the lfs filter."""
    found = []
    for line in (gitattributes or b"").decode("utf-8", "replace").splitlines():
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        for attr in parts[1:]:
            if attr == "filter=lfs":
                found.append((parts[0], True))
            elif attr in ("-filter", "!filter") or (attr.startswith("filter=") and attr != "filter=lfs"):
                found.append((parts[0], False))
    return found


def ignore_patterns(gitignore: str) -> list[tuple[str, bool]]:
    """`(pattern, ignored)` per line of a `.gitignore` (`!pattern` re-includes), for `tracked`."""
    found = []
    for line in gitignore.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            found.append((line[1:], False) if line.startswith("!") else (line, True))
    return found


def tracked(path: str, patterns: list[tuple[str, bool]]) -> bool:
    """Whether the patterns (of `.gitattributes`, or `.gitignore`) select `path` (the last matching line
    wins, as in git)."""
    result = False
    for pattern, is_lfs in patterns:
        if _matches(path, pattern):
            result = is_lfs
    return result


def _matches(path: str, pattern: str) -> bool:
    """gitattributes matching: a pattern without `/` matches the file name at any depth."""
    if "/" not in pattern.rstrip("/"):
        return fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], pattern)
    pattern = pattern.lstrip("/")
    return fnmatch.fnmatchcase(path, pattern) or (
        pattern.startswith("**/") and fnmatch.fnmatchcase(path, pattern[3:])
    )


def needs_lfs(size: int, sample: bytes) -> str | None:
    """Why the Hub refuses this content as a regular file (None: it may be regular)."""
    if size > MAX_REGULAR_SIZE:
        return TOO_LARGE
    if size > MAX_REGULAR_BINARY_SIZE and b"\x00" in sample[:SAMPLE_SIZE]:
        return BINARY
    return None


def upload_mode(path: str, size: int, sample: bytes, patterns: list[tuple[str, bool]]) -> str:
    """`"lfs"` or `"regular"`, as the Hub's preupload answers."""
    if size == 0:
        return "regular"
    return "lfs" if tracked(path, patterns) or needs_lfs(size, sample) else "regular"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Signer:
    """Signs storage URLs for one object, like a presigned URL (no expiry: hubsim is local)."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def sign(self, action: str, oid: str, size: int) -> str:
        return hmac.new(self._key, f"{action}:{oid}:{size}".encode(), hashlib.sha256).hexdigest()

    def check(self, action: str, oid: str, size: int, signature: str | None) -> bool:
        return signature is not None and hmac.compare_digest(self.sign(action, oid, size), signature)


def storage_base(base_url: str) -> str:
    """Where hubsim serves LFS content: itself, but under a second host name when it can.

    The Hub redirects LFS downloads to another host (its CDN); the client then reads the file's metadata
    from the redirect and drops the token for the download. hubsim does the same by answering as
    `localhost` when addressed as `127.0.0.1` (and the reverse), which reach the same socket. Addressed
    any other way, the storage URL has the same host; the client follows it and reads the same metadata
    from the storage answer, which carries it too.
    """
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    other = {"127.0.0.1": "localhost", "localhost": "127.0.0.1"}.get(host, host)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{other}{port}"


def storage_url(signer: Signer, base_url: str, action: str, oid: str, size: int, **extra: str) -> str:
    """A signed storage URL for one object (`action`: upload or download); `extra` query values must be
    URL-safe already."""
    query = "".join(f"&{k}={v}" for k, v in extra.items())
    signature = signer.sign(action, oid, size)
    return f"{storage_base(base_url)}/{STORAGE_PREFIX}/{oid}?size={size}&sig={signature}{query}"
