"""hubsim's state on disk (`--data DIR`): JSON documents plus blob files, each written atomically.

Layout::

    DIR/hubsim.json                     users, orgs, webhooks and moved repos' old names
    DIR/repos/<type>/<ns>/<name>.json   one repo: commits, refs, discussions, settings
    DIR/blobs/<oid[:2]>/<oid[2:]>       file contents (see `store.BlobStore`)
    DIR/lfs/<sha256[:2]>/<sha256[2:]>   LFS objects
    DIR/xet/xorbs/, DIR/xet/shards/     Xet storage: xorbs and the shards that registered files

A repo's document is rewritten after each change to that repo, so a restart finds everything that was
acknowledged to a client.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.errors import ConfigError
from bot.hubsim.store import Repo, atomic_write

_META = "hubsim.json"
_FORMAT = 1


class DataDir:
    """Reads and writes one data directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        try:
            (root / "repos").mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"cannot use hubsim data directory {root}: {e}") from e

    @property
    def blobs(self) -> Path:
        return self.root / "blobs"

    @property
    def lfs(self) -> Path:
        """LFS objects, by sha256."""
        return self.root / "lfs"

    @property
    def xet(self) -> Path:
        """Xet storage (`xet.storage`)."""
        return self.root / "xet"

    def load_meta(self) -> dict[str, Any] | None:
        """The saved users, orgs and hooks, or None on a fresh directory."""
        path = self.root / _META
        if not path.exists():
            return None
        meta = self._read(path)
        if meta.get("format") != _FORMAT:
            raise ConfigError(f"{path}: unknown hubsim data format {meta.get('format')!r}")
        return meta

    def save_meta(
        self, users: dict[str, Any], hooks: list[dict[str, Any]], moved: list[dict[str, str]]
    ) -> None:
        """Save users, orgs, hooks and the old names of moved repos."""
        meta = {"format": _FORMAT, "directory": users, "webhooks": hooks, "moved": moved}
        self._write(self.root / _META, meta)

    def load_repos(self) -> list[Repo]:
        """Every saved repo."""
        repos = []
        for path in sorted((self.root / "repos").glob("*/*/*.json")):
            try:
                repos.append(Repo.from_dict(self._read(path)))
            except (KeyError, TypeError) as e:
                raise ConfigError(f"{path} is not a hubsim repo document: {e}") from e
        return repos

    def save_repo(self, repo: Repo) -> None:
        """Save one repo's whole document."""
        self._write(self._repo_path(repo), repo.to_dict())

    def delete_repo(self, repo: Repo) -> None:
        """Forget one repo (its blobs stay: they may be shared)."""
        self._repo_path(repo).unlink(missing_ok=True)

    def _repo_path(self, repo: Repo) -> Path:
        namespace, name = repo.name.split("/")
        return self.root / "repos" / repo.type / namespace / f"{name}.json"

    @staticmethod
    def _read(path: Path) -> dict[str, Any]:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot read hubsim data file {path}: {e}") from e

    @staticmethod
    def _write(path: Path, data: dict[str, Any]) -> None:
        atomic_write(path, json.dumps(data, separators=(",", ":")).encode())
