"""Weights through Git LFS as on the Hub: preupload's choice, the batch API, pointers, storage redirects.

The client here runs without Xet (`lfs_client`), as older clients and users who turn Xet off do; Xet is
tested in test_hubsim_xet.py."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import httpx
import pytest
from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

pytestmark = pytest.mark.usefixtures("lfs_client")

MIB = 1024 * 1024
WEIGHTS = bytes(range(256)) * 4096  # 1 MiB of binary "weights"


def _auth(hubsim) -> dict[str, str]:
    return {"authorization": f"Bearer {hubsim.token}"}


def _preupload(hubsim, repo_id: str, files: list[tuple[str, int, bytes]]) -> dict[str, str]:
    body = {
        "files": [
            {"path": path, "size": size, "sample": base64.b64encode(sample[:512]).decode()}
            for path, size, sample in files
        ]
    }
    answer = httpx.post(f"{hubsim.url}/api/models/{repo_id}/preupload/main", json=body, headers=_auth(hubsim))
    answer.raise_for_status()
    return {f["path"]: f["uploadMode"] for f in answer.json()["files"]}


def _commit(hubsim, repo_id: str, *lines: dict) -> httpx.Response:
    header = {"key": "header", "value": {"summary": "raw commit", "description": ""}}
    body = "\n".join(json.dumps(line) for line in (header, *lines))
    return httpx.post(
        f"{hubsim.url}/api/models/{repo_id}/commit/main",
        content=body,
        headers={**_auth(hubsim), "content-type": "application/x-ndjson"},
    )


def _calls(hubsim) -> list[tuple[str, str]]:
    return [(method, path) for method, path, _ in hubsim.server.requests]


def test_preupload_decides_lfs_by_gitattributes_size_and_binary_content(hubsim, repo_factory):
    repo_id = repo_factory()
    text, binary = b"plain text\n" * 50, b"\x00\x01binary" * 50
    modes = _preupload(
        hubsim,
        repo_id,
        [
            ("model.safetensors", 10, b"{}"),  # *.safetensors in the new repo's .gitattributes
            ("sub/dir/events.out.tfevents.1", 10, text),  # *tfevents* matches at any depth
            ("notes.txt", 10 * MIB, text),  # text up to 10 MiB stays in git
            ("big.txt", 10 * MIB + 1, text),  # larger: LFS
            ("small.dat", MIB, binary),  # binary up to 1 MiB stays in git
            ("large.dat", MIB + 1, binary),  # larger: LFS
            ("large.txt", MIB + 1, text),
            ("empty.bin", 0, b""),
        ],
    )
    assert modes == {
        "model.safetensors": "lfs",
        "sub/dir/events.out.tfevents.1": "lfs",
        "notes.txt": "regular",
        "big.txt": "lfs",
        "small.dat": "regular",
        "large.dat": "lfs",
        "large.txt": "regular",
        "empty.bin": "regular",
    }


def test_preupload_reads_the_revisions_own_gitattributes(hubsim, repo_factory):
    repo_id = repo_factory()
    hubsim.api.upload_file(
        path_or_fileobj=b"*.custom filter=lfs diff=lfs merge=lfs -text\n*.bin -filter\n",
        path_in_repo=".gitattributes",
        repo_id=repo_id,
    )
    modes = _preupload(hubsim, repo_id, [("x.custom", 3, b"abc"), ("w.bin", 3, b"abc")])
    assert modes == {"x.custom": "lfs", "w.bin": "regular"}


def test_upload_goes_through_batch_put_verify_and_commits_a_pointer(hubsim, repo_factory, tmp_path):
    repo_id = repo_factory()
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(WEIGHTS)
    hubsim.server.requests.clear()
    commit = hubsim.api.upload_file(
        path_or_fileobj=weights, path_in_repo="model.safetensors", repo_id=repo_id
    )
    calls = [(m, p.split("?")[0].rsplit("/", 1)[-1] if "_lfs-storage" in p else p) for m, p in _calls(hubsim)]
    sha = hashlib.sha256(WEIGHTS).hexdigest()
    assert calls == [
        ("POST", f"/api/models/{repo_id}/preupload/main"),
        ("POST", f"/{repo_id}.git/info/lfs/objects/batch"),
        ("PUT", sha),
        ("POST", f"/{repo_id}.git/info/lfs/objects/verify"),
        ("POST", f"/api/models/{repo_id}/commit/main"),
    ]
    stored = hubsim.server.repos[("model", repo_id)].commits[commit.oid].files["model.safetensors"]
    assert hubsim.server.read(stored) == (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {len(WEIGHTS)}\n".encode()
    )
    [entry] = hubsim.api.get_paths_info(repo_id, ["model.safetensors"])
    assert entry.blob_id == stored and entry.size == len(WEIGHTS)
    assert (entry.lfs.sha256, entry.lfs.size, entry.lfs.pointer_size) == (sha, len(WEIGHTS), 132)
    [tree_entry] = [e for e in hubsim.api.list_repo_tree(repo_id) if e.path == "model.safetensors"]
    assert tree_entry.lfs == entry.lfs
    sibling = next(
        s
        for s in hubsim.api.model_info(repo_id, files_metadata=True).siblings
        if s.rfilename == "model.safetensors"
    )
    assert sibling.size == len(WEIGHTS) and sibling.lfs.sha256 == sha


def test_download_is_a_redirect_to_storage_with_the_linked_etag_and_size(hubsim, repo_factory, tmp_path):
    repo_id = repo_factory()
    commit = hubsim.api.upload_file(
        path_or_fileobj=WEIGHTS, path_in_repo="w/model.safetensors", repo_id=repo_id
    )
    url = hf_hub_url(repo_id, "w/model.safetensors", endpoint=hubsim.url)
    head = httpx.head(url, headers=_auth(hubsim))
    sha = hashlib.sha256(WEIGHTS).hexdigest()
    assert head.status_code == 302
    assert head.headers["x-linked-etag"] == f'"{sha}"' and head.headers["x-linked-size"] == str(len(WEIGHTS))
    assert head.headers["x-repo-commit"] == commit.oid
    location = head.headers["location"]
    assert location.startswith(hubsim.url.replace("127.0.0.1", "localhost") + "/_lfs-storage/")
    assert httpx.get(location).content == WEIGHTS  # a signed URL: no token needed, like the Hub's CDN
    assert httpx.get(location, headers={"Range": "bytes=10-19"}).content == WEIGHTS[10:20]
    assert httpx.get(location.replace("sig=", "sig=0")).status_code == 403
    meta = get_hf_file_metadata(url, token=hubsim.token)
    assert (meta.etag, meta.size, meta.commit_hash, meta.location) == (
        sha,
        len(WEIGHTS),
        commit.oid,
        location,
    )
    hubsim.server.requests.clear()
    path = hf_hub_download(repo_id, "w/model.safetensors", token=hubsim.token, cache_dir=tmp_path)
    assert Path(path).read_bytes() == WEIGHTS
    assert [(m, s) for m, p, s in hubsim.server.requests] == [("HEAD", 302), ("GET", 200)]
    assert "_lfs-storage" in hubsim.server.requests[-1][1]
    blob = Path(path).resolve()
    assert blob.name == sha  # the client names the cached blob after X-Linked-Etag


def test_the_same_weights_twice_are_not_uploaded_again(hubsim, repo_factory):
    repo_id = repo_factory()
    hubsim.api.upload_file(path_or_fileobj=WEIGHTS, path_in_repo="a.safetensors", repo_id=repo_id)
    hubsim.server.requests.clear()
    hubsim.api.upload_file(path_or_fileobj=WEIGHTS, path_in_repo="b.safetensors", repo_id=repo_id)
    assert not [c for c in _calls(hubsim) if c[0] == "PUT"]
    assert hubsim.api.get_paths_info(repo_id, ["b.safetensors"])[0].lfs.size == len(WEIGHTS)


def test_commit_refuses_inline_content_the_hub_only_takes_through_lfs(hubsim, repo_factory):
    repo_id = repo_factory()
    for path, data, message in (
        ("big.txt", b"a" * (10 * MIB + 1), "files larger than 10 MiB"),
        ("large.dat", b"\x00" * (MIB + 1), "contains binary files"),
    ):
        line = {
            "key": "file",
            "value": {"path": path, "content": base64.b64encode(data).decode(), "encoding": "base64"},
        }
        answer = _commit(hubsim, repo_id, line)
        assert answer.status_code == 400 and message in answer.headers["x-error-message"]


def test_commit_refuses_a_pointer_to_an_object_never_uploaded(hubsim, repo_factory):
    repo_id = repo_factory()
    line = {
        "key": "lfsFile",
        "value": {"path": "w.safetensors", "algo": "sha256", "oid": "ab" * 32, "size": 3},
    }
    answer = _commit(hubsim, repo_id, line)
    assert answer.status_code == 400 and "does not exist" in answer.json()["error"]
    assert [f.rfilename for f in hubsim.api.model_info(repo_id).siblings] == [".gitattributes"]


def test_batch_never_offers_xet_or_multipart(hubsim, repo_factory):
    """huggingface_hub 0.36-1.19 offer `xet` in `transfers` and use it only if the answer picks it."""
    repo_id = repo_factory()
    body = {
        "operation": "upload",
        "transfers": ["basic", "multipart", "xet"],
        "objects": [{"oid": hashlib.sha256(b"x").hexdigest(), "size": 1}, {"oid": "not-a-sha", "size": 1}],
        "hash_algo": "sha256",
        "ref": {"name": "main"},
    }
    answer = httpx.post(
        f"{hubsim.url}/{repo_id}.git/info/lfs/objects/batch", json=body, headers=_auth(hubsim)
    )
    assert answer.status_code == 200 and answer.json()["transfer"] == "basic"
    ok, bad = answer.json()["objects"]
    assert set(ok["actions"]) == {"upload", "verify"} and "chunk_size" not in ok["actions"]["upload"].get(
        "header", {}
    )
    assert bad["error"]["code"] == 422
    anonymous = httpx.post(f"{hubsim.url}/{repo_id}.git/info/lfs/objects/batch", json=body)
    assert anonymous.status_code == 401
