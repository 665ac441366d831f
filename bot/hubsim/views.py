"""The JSON shapes of repo info, tree entries, refs and commits, as huggingface_hub reads them.

An LFS file is listed as the Hub lists it: `oid` is the git blob sha1 of its pointer, `size` the real size,
and `lfs: {oid (sha256), size, pointerSize}`; a file stored through Xet also has `xetHash`, its Xet file id
(which lets huggingface_hub download it through Xet without asking `resolve` first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.hubsim import cards, gitobjects
from bot.hubsim.errors import entry_not_found
from bot.hubsim.service import HubService
from bot.hubsim.store import HEADS, PRS, TAGS, Commit, Repo
from bot.hubsim.xet import hashes


@dataclass(frozen=True)
class Derived:
    """What the Hub derives from a commit's files (cached per commit: commits never change)."""

    card: dict[str, Any]
    config: dict[str, Any] | None
    summary: dict[str, Any]
    tags: list[str]
    library_name: str | None
    pipeline_tag: str | None
    relation: str | None  # to the base models (`modeltree`)
    base_models: list[str]


def derived(hub: HubService, commit: Commit) -> Derived:
    """The card, config and tags of `commit`."""
    if commit.oid not in hub.derived_cache:
        hub.derived_cache[commit.oid] = _derive(hub, commit)
    return hub.derived_cache[commit.oid]


def _derive(hub: HubService, commit: Commit) -> Derived:
    def content(path: str) -> bytes | None:
        return hub.read(commit.files[path]) if path in commit.files else None

    try:
        card = cards.card_data((content("README.md") or b"").decode("utf-8"))
    except (cards.CardError, UnicodeDecodeError):
        card = {}  # the commit endpoint refuses such READMEs; an old one simply shows no metadata
    config = cards.json_file(content("config.json"))
    summary = cards.config_summary(config, cards.json_file(content("tokenizer_config.json")))
    paths = list(commit.files)
    relation, bases = cards.lineage(card, config, paths)
    return Derived(
        card,
        config,
        summary,
        cards.tags(card, config, paths),
        cards.library_name(card, config),
        cards.pipeline_tag(card, config),
        relation,
        bases,
    )


def repo_info(
    hub: HubService,
    repo: Repo,
    commit: Commit,
    *,
    blobs: bool = False,
    card: bool = True,
    config: bool = True,
    siblings: bool = True,
) -> dict[str, Any]:
    """`model_info` / `dataset_info` / `space_info`, and the items of `list_models`."""
    facts = derived(hub, commit)
    info: dict[str, Any] = {
        "_id": repo.id,
        "id": repo.name,
        "author": repo.owner,
        "sha": commit.oid,
        "lastModified": commit.date,
        "createdAt": repo.created_at,
        "private": repo.private,
        "gated": repo.gated,
        "disabled": False,
        "downloads": repo.stats.downloads,
        "downloadsAllTime": repo.stats.downloads_all_time,
        "likes": repo.stats.likes,
        "trendingScore": repo.stats.trending_score,
        "tags": facts.tags,
    }
    if repo.type == "model":
        info.update(modelId=repo.name, library_name=facts.library_name, pipeline_tag=facts.pipeline_tag)
        if config:
            info["config"] = facts.summary
    if card and facts.card:
        info["cardData"] = facts.card
    if siblings:
        info["siblings"] = [_sibling(hub, path, oid, blobs) for path, oid in sorted(commit.files.items())]
        if blobs:
            info["usedStorage"] = sum(file_size(hub, oid) for oid in set(commit.files.values()))
    return info


def _sibling(hub: HubService, path: str, oid: str, blobs: bool) -> dict[str, Any]:
    if not blobs:
        return {"rfilename": path}
    sibling: dict[str, Any] = {"rfilename": path, "size": file_size(hub, oid), "blobId": oid}
    if (pointer := hub.lfs_pointer(oid)) is not None:
        sibling["lfs"] = {"size": pointer.size, "sha256": pointer.sha256, "pointerSize": hub.blobs.size(oid)}
    return sibling


def file_size(hub: HubService, oid: str) -> int:
    """A file's size: its content's, for an LFS file too (not its pointer's)."""
    pointer = hub.lfs_pointer(oid)
    return pointer.size if pointer is not None else hub.blobs.size(oid)


def tree(
    hub: HubService, repo: Repo, commit: Commit, path: str, recursive: bool, expand: bool
) -> list[dict[str, Any]]:
    """The entries under `path` ("" = root): children, or all descendants with `recursive`."""
    prefix = path.strip("/") + "/" if path.strip("/") else ""
    if prefix and not any(p.startswith(prefix) for p in commit.files):
        raise entry_not_found(path)
    entries: dict[str, dict[str, Any]] = {}
    for file_path in commit.files:
        if not file_path.startswith(prefix):
            continue
        parts = file_path[len(prefix) :].split("/")
        depth = len(parts) if recursive else 1
        for i in range(1, min(depth, len(parts) - 1) + 1):
            folder = prefix + "/".join(parts[:i])
            entries.setdefault(folder, directory_entry(commit, folder))
        if recursive or len(parts) == 1:
            entries[file_path] = file_entry(hub, repo, commit, file_path, expand)
    return [entries[p] for p in sorted(entries)]


def file_entry(hub: HubService, repo: Repo, commit: Commit, path: str, expand: bool) -> dict[str, Any]:
    """A file in a tree listing (`oid` = git blob sha1; `lfs` for an LFS file)."""
    oid = commit.files[path]
    entry: dict[str, Any] = {"type": "file", "oid": oid, "size": file_size(hub, oid), "path": path}
    if (pointer := hub.lfs_pointer(oid)) is not None:
        entry["lfs"] = {"oid": pointer.sha256, "size": pointer.size, "pointerSize": hub.blobs.size(oid)}
        if (xet_file := hub.xet.file_by_sha256(pointer.sha256)) is not None:
            entry["xetHash"] = hashes.to_hex(xet_file.hash)
    if expand:
        last = last_commit(repo, commit, path)
        entry["lastCommit"] = {"id": last.oid, "title": last.title, "date": last.date}
    return entry


def directory_entry(commit: Commit, path: str) -> dict[str, Any]:
    """A folder in a tree listing (`oid` = its git tree sha1)."""
    return {"type": "directory", "oid": gitobjects.tree_oid(commit.files, path + "/"), "path": path}


def paths_info(
    hub: HubService, repo: Repo, commit: Commit, paths: list[str], expand: bool
) -> list[dict[str, Any]]:
    """`paths-info`: an entry for each path that exists (file or folder); missing paths are left out."""
    found = []
    for path in dict.fromkeys(p.strip("/") for p in paths):
        if path in commit.files:
            found.append(file_entry(hub, repo, commit, path, expand))
        elif path and any(p.startswith(path + "/") for p in commit.files):
            found.append(directory_entry(commit, path))
    return found


def last_commit(repo: Repo, commit: Commit, path: str) -> Commit:
    """The newest commit reachable from `commit` that changed `path`."""
    found = commit
    for older in repo.history(commit):
        if older.files.get(path) != commit.files[path]:
            break
        found = older
    return found


def refs(repo: Repo, include_prs: bool) -> dict[str, Any]:
    """`list_repo_refs`: `converts` always present, `pullRequests` only when asked for."""

    def items(prefix: str) -> list[dict[str, str]]:
        return [
            {"name": name, "ref": prefix + name, "targetCommit": oid}
            for name, oid in sorted(repo.refs_under(prefix).items())
        ]

    answer: dict[str, Any] = {"branches": items(HEADS), "converts": [], "tags": items(TAGS)}
    if include_prs:
        answer["pullRequests"] = sorted(items(PRS), key=lambda item: int(item["name"]))
    return answer


def commit_json(commit: Commit, formatted: bool) -> dict[str, Any]:
    """An item of `list_repo_commits`."""
    item: dict[str, Any] = {
        "id": commit.oid,
        "title": commit.title,
        "message": commit.message,
        "date": commit.date,
        "authors": [{"user": commit.author, "avatar": ""}],
    }
    if formatted:
        item["formatted"] = {"title": commit.title, "message": commit.message}
    return item
