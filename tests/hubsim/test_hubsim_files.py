"""Uploads and downloads through the real client (LFS paths: test_hubsim_lfs.py)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import httpx
import pytest
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationCopy,
    CommitOperationDelete,
    hf_hub_download,
    snapshot_download,
)
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_upload_folder_then_snapshot_download_round_trips_bytes(hubsim, repo_factory, model_folder, tmp_path):
    repo_id = repo_factory()
    commit = hubsim.api.upload_folder(repo_id=repo_id, folder_path=model_folder, commit_message="Add model")
    assert commit.oid == hubsim.api.model_info(repo_id).sha
    local = Path(snapshot_download(repo_id, token=hubsim.token, cache_dir=tmp_path / "cache"))
    assert local.name == commit.oid
    downloaded = _files(local)
    assert downloaded.pop(".gitattributes").startswith(b"*.7z filter=lfs")
    assert downloaded == _files(model_folder)


def test_hf_hub_download_then_cached_download_only_heads(hubsim, repo_factory, model_folder, tmp_path):
    repo_id = repo_factory()
    commit = hubsim.api.upload_folder(repo_id=repo_id, folder_path=model_folder)
    cache = tmp_path / "cache"
    first = hf_hub_download(repo_id, "nested/notes.txt", token=hubsim.token, cache_dir=cache)
    assert Path(first).read_text() == "line one\nline two\n"
    hubsim.server.requests.clear()
    again = hf_hub_download(repo_id, "nested/notes.txt", token=hubsim.token, cache_dir=cache)
    assert again == first
    assert [
        m for m, path, _ in hubsim.server.requests if path.endswith("/resolve/main/nested/notes.txt")
    ] == ["HEAD"]
    hubsim.server.requests.clear()
    pinned = hf_hub_download(
        repo_id, "nested/notes.txt", revision=commit.oid, token=hubsim.token, cache_dir=cache
    )
    assert Path(pinned).read_bytes() == Path(first).read_bytes()
    assert list(hubsim.server.requests) == []  # a cached file at a commit sha needs no request at all


def test_not_found_errors_map_to_the_clients_classes(hubsim, repo_factory, tmp_path):
    repo_id = repo_factory()
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(f"{hubsim.user}/no-such-repo", "x.txt", token=hubsim.token, cache_dir=tmp_path)
    with pytest.raises(RepositoryNotFoundError):
        hubsim.api.model_info(f"{hubsim.user}/no-such-repo")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(
            repo_id, ".gitattributes", revision="no-such-branch", token=hubsim.token, cache_dir=tmp_path
        )
    with pytest.raises(RevisionNotFoundError):
        hubsim.api.model_info(repo_id, revision="0" * 40)
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(repo_id, "missing/file.bin", token=hubsim.token, cache_dir=tmp_path)


def test_create_commit_adds_and_deletes_files_and_folders(hubsim, repo_factory, model_folder):
    repo_id = repo_factory()
    hubsim.api.upload_folder(repo_id=repo_id, folder_path=model_folder)
    hubsim.api.create_commit(
        repo_id,
        [
            CommitOperationDelete("nested/"),
            CommitOperationDelete("config.json"),
            CommitOperationAdd("new/deep/file.txt", b"new"),
        ],
        commit_message="Reshape",
    )
    assert sorted(hubsim.api.list_repo_files(repo_id)) == [
        ".gitattributes",
        "README.md",
        "model.safetensors",
        "new/deep/file.txt",
    ]
    with pytest.raises(RemoteEntryNotFoundError):
        hubsim.api.delete_file("config.json", repo_id)


def test_parent_commit_must_be_the_tip(hubsim, repo_factory):
    repo_id = repo_factory()
    stale = hubsim.api.model_info(repo_id).sha
    hubsim.api.upload_file(path_or_fileobj=b"1", path_in_repo="a.txt", repo_id=repo_id, parent_commit=stale)
    with pytest.raises(HfHubHTTPError) as excinfo:
        hubsim.api.upload_file(
            path_or_fileobj=b"2", path_in_repo="a.txt", repo_id=repo_id, parent_commit=stale
        )
    assert excinfo.value.response.status_code == 412


def test_unchanged_upload_makes_no_commit(hubsim, repo_factory):
    repo_id = repo_factory()
    first = hubsim.api.upload_file(path_or_fileobj=b"same", path_in_repo="a.txt", repo_id=repo_id)
    again = hubsim.api.upload_file(path_or_fileobj=b"same", path_in_repo="a.txt", repo_id=repo_id)
    assert again.oid == first.oid
    assert len(hubsim.api.list_repo_commits(repo_id)) == 2


def test_resolve_headers_and_ranges(hubsim, repo_factory):
    repo_id = repo_factory()
    data = bytes(range(256)) * 40  # binary, but small and not an LFS pattern: a regular file
    commit = hubsim.api.upload_file(path_or_fileobj=data, path_in_repo="w/b.dat", repo_id=repo_id)
    url = f"{hubsim.url}/{repo_id}/resolve/main/w/b.dat"
    head = httpx.head(url)
    assert head.headers["x-repo-commit"] == commit.oid
    assert head.headers["content-length"] == str(len(data))
    assert head.headers["etag"].strip('"') == hubsim.api.get_paths_info(repo_id, ["w/b.dat"])[0].blob_id
    part = httpx.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    assert httpx.get(url, headers={"Range": "bytes=-10"}).content == data[-10:]
    assert httpx.get(url, headers={"Range": f"bytes={len(data)}-"}).status_code == 416
    missing = httpx.head(f"{hubsim.url}/{repo_id}/resolve/main/nope.bin")
    assert missing.status_code == 404 and missing.headers["x-error-code"] == "EntryNotFound"
    assert missing.headers["x-repo-commit"] == commit.oid


def test_gated_repo_needs_granted_access(hubsim, repo_factory, tmp_path):
    repo_id = repo_factory("gated")
    hubsim.api.upload_file(path_or_fileobj=b"w", path_in_repo="w.bin", repo_id=repo_id)
    hubsim.api.update_repo_settings(repo_id, gated="auto")
    assert hubsim.other_api.model_info(repo_id).gated == "auto"  # metadata stays visible
    with pytest.raises(GatedRepoError):
        hf_hub_download(repo_id, "w.bin", token=hubsim.other_token, cache_dir=tmp_path / "other")
    assert (
        Path(hf_hub_download(repo_id, "w.bin", token=hubsim.token, cache_dir=tmp_path / "own")).read_bytes()
        == b"w"
    )
    hubsim.server.grant_access("model", repo_id, hubsim.other_user)
    assert hf_hub_download(repo_id, "w.bin", token=hubsim.other_token, cache_dir=tmp_path / "granted")


def test_files_with_unusual_names(hubsim, repo_factory, tmp_path):
    repo_id = repo_factory()
    names = [
        "with space.txt",
        "ünïcode/dåta.json",
        "模型/说明.txt",
        "percent%2Fliteral.txt",
        "a+b#c 'q\".txt",
    ]
    hubsim.api.create_commit(
        repo_id, [CommitOperationAdd(n, n.encode()) for n in names], commit_message="odd names"
    )
    assert sorted(hubsim.api.list_repo_files(repo_id)) == sorted([".gitattributes", *names])
    for name in names:
        path = hf_hub_download(repo_id, name, token=hubsim.token, cache_dir=tmp_path)
        assert Path(path).read_bytes() == name.encode()


def test_copies_and_safetensors_metadata(hubsim, repo_factory):
    """CommitOperationCopy (paths-info + download + inline re-upload) and the Range reads behind
    `get_safetensors_metadata`, which the planner can use to size a model without downloading it."""
    repo_id = repo_factory()
    header = json.dumps({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}).encode()
    weights = struct.pack("<Q", len(header)) + header + bytes(24)
    hubsim.api.create_commit(repo_id, [CommitOperationAdd("model.safetensors", weights)], commit_message="w")
    hubsim.api.create_commit(
        repo_id, [CommitOperationCopy("model.safetensors", "copy/model.safetensors")], commit_message="copy"
    )
    paths = hubsim.api.get_paths_info(repo_id, ["model.safetensors", "copy/model.safetensors"])
    assert paths[0].blob_id == paths[1].blob_id
    assert hubsim.api.get_safetensors_metadata(repo_id).parameter_count == {"F32": 6}
