"""Content-addressed blobs and git-like repos: commits with parents, branches, tags and `refs/pr/N`.

A commit holds the whole file list (path → blob oid) rather than a chain of trees: repos in hubsim are
small, and a flat map makes trees, diffs and merges one dictionary operation each. Ids stay real git ids
(see `gitobjects`).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bot.hubsim import gitobjects
from bot.hubsim.discussions import Discussion
from bot.hubsim.errors import ApiError, bad_request, entry_not_found, revision_not_found

DEFAULT_BRANCH = "main"
HEADS, TAGS, PRS = "refs/heads/", "refs/tags/", "refs/pr/"
MAIN_REF = HEADS + DEFAULT_BRANCH
_SHA = re.compile(r"[0-9a-f]{40}")
_SHORT_SHA = re.compile(r"[0-9a-f]{7,39}")
_BAD_REF = re.compile(r"(^|/)\.|\.\.|[\x00-\x20~^:?*\[\\]|//|/$|^/|\.lock$|@\{")

# What the Hub puts in the first commit of a new repo.
INITIAL_GITATTRIBUTES = b"".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n".encode()
    for pattern in (
        "*.7z",
        "*.arrow",
        "*.bin",
        "*.bz2",
        "*.ckpt",
        "*.ftz",
        "*.gz",
        "*.h5",
        "*.joblib",
        "*.model",
        "*.msgpack",
        "*.npy",
        "*.npz",
        "*.onnx",
        "*.ot",
        "*.parquet",
        "*.pb",
        "*.pickle",
        "*.pkl",
        "*.pt",
        "*.pth",
        "*.rar",
        "*.safetensors",
        "*.tar",
        "*.tflite",
        "*.tgz",
        "*.wasm",
        "*.xz",
        "*.zip",
        "*.zst",
        "*tfevents*",
    )
)


class BlobStore:
    """Contents by oid (`key` of the content: the git blob sha1 for git blobs, the sha256 for LFS objects):
    in memory, or one file per blob under `root` (written atomically)."""

    def __init__(self, root: Path | None = None, key: Callable[[bytes], str] = gitobjects.blob_oid) -> None:
        self._root = root
        self._key = key
        self._memory: dict[str, bytes] = {}
        self._sizes: dict[str, int] = {}
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)

    def put(self, data: bytes) -> str:
        """Store `data` (once) and return its oid."""
        oid = self._key(data)
        if oid in self._sizes:
            return oid
        if self._root is None:
            self._memory[oid] = data
        else:
            path = self._path(oid)
            if not path.exists():
                atomic_write(path, data)
        self._sizes[oid] = len(data)
        return oid

    def get(self, oid: str) -> bytes:
        """The content of blob `oid` (KeyError when unknown)."""
        if self._root is None:
            return self._memory[oid]
        try:
            return self._path(oid).read_bytes()
        except FileNotFoundError:
            raise KeyError(oid) from None

    def __contains__(self, oid: object) -> bool:
        if not isinstance(oid, str):
            return False
        return oid in self._sizes or (self._root is not None and self._path(oid).exists())

    def size(self, oid: str) -> int:
        """The size in bytes of blob `oid`."""
        if oid not in self._sizes:
            if self._root is None:
                raise KeyError(oid)
            self._sizes[oid] = self._path(oid).stat().st_size
        return self._sizes[oid]

    def _path(self, oid: str) -> Path:
        assert self._root is not None
        return self._root / oid[:2] / oid[2:]


def atomic_write(path: Path, data: bytes) -> None:
    """Write through a temporary file and rename, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class Commit:
    """One commit: its id, parents, full file list (path → blob oid) and message."""

    oid: str
    parents: list[str]
    files: dict[str, str]
    title: str
    message: str
    author: str
    date: str


@dataclass
class Stats:
    """The counts the Hub shows for a repo, and its likers (user name → when they liked it)."""

    downloads: int = 0
    downloads_all_time: int = 0
    likes: int = 0
    trending_score: int = 0
    likers: dict[str, str] = field(default_factory=dict)


@dataclass
class Repo:
    """A model, dataset or space repo with its history, refs and discussions."""

    type: str
    name: str
    owner: str
    id: str = field(default_factory=gitobjects.object_id)
    private: bool = False
    gated: str | bool = False
    created_at: str = field(default_factory=gitobjects.now_iso)
    last_modified: str = field(default_factory=gitobjects.now_iso)
    commits: dict[str, Commit] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    discussions: list[Discussion] = field(default_factory=list)
    gate_grants: list[str] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)

    @property
    def head(self) -> Commit:
        """The tip of the default branch."""
        return self.commits[self.refs[MAIN_REF]]

    def refs_under(self, prefix: str) -> dict[str, str]:
        """Short name → commit oid for refs under `prefix` (e.g. branches under `refs/heads/`)."""
        return {ref[len(prefix) :]: oid for ref, oid in self.refs.items() if ref.startswith(prefix)}

    def ref_name(self, revision: str) -> str | None:
        """The full ref a revision names (branch before tag, like git), or None for a sha / unknown."""
        if revision in self.refs:
            return revision
        for prefix in (HEADS, TAGS):
            if prefix + revision in self.refs:
                return prefix + revision
        return None

    def resolve(self, revision: str) -> Commit:
        """The commit a branch, tag, `refs/...` name or full sha points to (RevisionNotFound otherwise)."""
        ref = self.ref_name(revision)
        if ref is not None:
            return self.commits[self.refs[ref]]
        if _SHA.fullmatch(revision) and revision in self.commits:
            return self.commits[revision]
        if _SHORT_SHA.fullmatch(revision):  # an abbreviated sha, as git takes it when it is unambiguous
            matches = [oid for oid in self.commits if oid.startswith(revision)]
            if len(matches) == 1:
                return self.commits[matches[0]]
        raise revision_not_found(revision)

    def add_commit(
        self, parents: list[str], files: dict[str, str], title: str, message: str, author: str
    ) -> Commit:
        """Record a new commit object (no ref moves) and return it."""
        date = gitobjects.now_iso()
        text = f"{title}\n\n{message}" if message else title
        oid = gitobjects.commit_oid(
            gitobjects.tree_oid(files), parents, author, gitobjects.iso_to_epoch(date), text
        )
        commit = Commit(oid, parents, dict(files), title, message, author, date)
        self.commits[oid] = commit
        self.last_modified = date
        return commit

    def history(self, start: Commit) -> list[Commit]:
        """Commits reachable from `start`, newest first (commits are kept in creation order)."""
        reachable: set[str] = set()
        stack = [start.oid]
        while stack:
            oid = stack.pop()
            if oid not in reachable:
                reachable.add(oid)
                stack.extend(self.commits[oid].parents)
        return [commit for oid, commit in reversed(self.commits.items()) if oid in reachable]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of everything, for persistence."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Repo:
        """The inverse of `to_dict`."""
        data = dict(data)
        data["commits"] = {oid: Commit(**c) for oid, c in data["commits"].items()}
        data["discussions"] = [Discussion.from_dict(d) for d in data["discussions"]]
        if "stats" in data:
            data["stats"] = Stats(**data["stats"])
        return cls(**data)


def check_ref_name(name: str) -> str:
    """A branch or tag name git would accept (400 otherwise)."""
    if not name or _BAD_REF.search(name) or name.startswith("refs/"):
        raise bad_request(f"Invalid reference name: {name!r}")
    return name


def check_path(path: Any) -> str:
    """A repo-relative file path: non-empty, no `..`, no leading slash, no `.git/` (400 otherwise). A
    backslash is an ordinary character, as on the Hub (clients guard their own file systems)."""
    if not isinstance(path, str) or not path or path.startswith("/") or "\x00" in path:
        raise bad_request(f"Invalid path in repo: {path!r}")
    if path == ".." or path.startswith(("../", "..\\")):  # the Hub refuses a path leaving the repo: 422
        raise ApiError(422, f"Invalid path in repo: {path!r} (relative paths are forbidden)")
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts) or parts[0] == ".git":
        raise bad_request(f"Invalid path in repo: {path!r}")
    return path


def apply_changes(
    files: dict[str, str], puts: dict[str, str], deleted_files: list[str], deleted_folders: list[str]
) -> dict[str, str]:
    """A new file list: `files` minus deletions plus `puts` (path → blob oid). Deleting nothing is a 404."""
    result = dict(files)
    for path in deleted_files:
        if path not in result:
            if any(other.startswith(path + "/") for other in result):  # a folder: the Hub deletes it too
                deleted_folders = [*deleted_folders, path]
                continue
            raise entry_not_found(f"{path} (a file with this name doesn't exist)")
        del result[path]
    for folder in deleted_folders:
        prefix = folder.rstrip("/") + "/"
        doomed = [path for path in result if path.startswith(prefix)]
        if not doomed:
            raise entry_not_found(f"{folder} (a folder with this name doesn't exist)")
        for path in doomed:
            del result[path]
    for path, oid in puts.items():
        if any(other.startswith(path + "/") for other in result):
            raise bad_request(f"Cannot add file {path}: a folder with this name exists")
        parents = ["/".join(path.split("/")[:i]) for i in range(1, path.count("/") + 1)]
        if clash := next((p for p in parents if p in result), None):
            raise bad_request(f"Cannot add file {path}: {clash} is a file")
        result[path] = oid
    return result


class RepoIndex(dict[tuple[str, str], Repo]):
    """Repos by `(type, id)`, with ids compared case-insensitively as the Hub does (the `Repo` keeps the
    canonical spelling, which is what every answer shows)."""

    @staticmethod
    def _key(key: tuple[str, str]) -> tuple[str, str]:
        return key[0], key[1].lower()

    def __getitem__(self, key: tuple[str, str]) -> Repo:
        return super().__getitem__(self._key(key))

    def __setitem__(self, key: tuple[str, str], repo: Repo) -> None:
        super().__setitem__(self._key(key), repo)

    def __delitem__(self, key: tuple[str, str]) -> None:
        super().__delitem__(self._key(key))

    def __contains__(self, key: object) -> bool:
        return isinstance(key, tuple) and super().__contains__(self._key(key))

    def get(self, key: tuple[str, str], default: Any = None) -> Any:
        return super().get(self._key(key), default)
