"""Xet as on the Hub: the client as installed uploads and downloads weights through hubsim's CAS, which
checks every hash, and what it stores is readable by clients without Xet too."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from pathlib import Path

import httpx
import lz4.frame
import pytest
from huggingface_hub import hf_hub_download, snapshot_download

from bot.hubsim.xet import hashes, shard

MIB = 1024 * 1024
WEIGHTS = os.urandom(3 * MIB)  # one xorb; random, so that no other test's upload shares a chunk with it


def _calls(hubsim) -> list[tuple[str, str, int]]:
    return list(hubsim.server.requests)


def _token(
    hubsim, repo_id: str, kind: str = "write", token: str | None = None, query: str = ""
) -> httpx.Response:
    auth = {"authorization": f"Bearer {token or hubsim.token}"}
    return httpx.get(f"{hubsim.url}/api/models/{repo_id}/xet-{kind}-token/main{query}", headers=auth)


def _cas(hubsim, repo_id: str, kind: str = "write") -> tuple[str, dict[str, str]]:
    answer = _token(hubsim, repo_id, kind).json()
    return answer["casUrl"], {"authorization": f"Bearer {answer['accessToken']}"}


@pytest.fixture
def uploaded(hubsim, repo_factory, tmp_path):
    """A repo whose `w.safetensors` was uploaded through Xet, with the requests that made it."""
    repo_id = repo_factory()
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(WEIGHTS)
    hubsim.server.requests.clear()
    hubsim.api.upload_file(path_or_fileobj=weights, path_in_repo="w.safetensors", repo_id=repo_id)
    return repo_id, _calls(hubsim)


def test_an_upload_goes_through_xet_and_commits_the_file_by_its_sha256(hubsim, uploaded):
    repo_id, calls = uploaded
    paths = [path for _, path, _ in calls]
    assert f"/api/models/{repo_id}/xet-write-token/main" in paths
    assert any("/v1/xorb-grants/default/" in p for p in paths)
    assert any("/v1/xorb-commits/default/" in p for p in paths)
    assert f"/_xet/{hubsim.server.xet.id}/v2/shards" in paths
    assert not [p for p in paths if "/info/lfs/" in p]  # no LFS on this path
    assert all(status < 400 or "/v1/chunks/" in path for _, path, status in calls)  # dedupe: 404 = new
    [info] = hubsim.api.get_paths_info(repo_id, ["w.safetensors"])
    assert info.lfs.sha256 == hashlib.sha256(WEIGHTS).hexdigest() and info.size == len(WEIGHTS)
    [entry] = [e for e in hubsim.api.list_repo_tree(repo_id) if e.path == "w.safetensors"]
    assert entry.xet_hash in {hashes.to_hex(f) for f in hubsim.server.xet.files}


def test_xet_downloads_are_byte_identical_through_xet(hubsim, uploaded, tmp_path):
    repo_id, _ = uploaded
    hubsim.server.requests.clear()
    path = hf_hub_download(repo_id, "w.safetensors", cache_dir=tmp_path, token=hubsim.token)
    assert Path(path).read_bytes() == WEIGHTS
    paths = [path for _, path, _ in _calls(hubsim)]
    assert any(p.startswith(f"/_xet/{hubsim.server.xet.id}/v2/reconstructions/") for p in paths)
    assert any(p.startswith("/_xet-storage/xorbs/") for p in paths)
    folder = snapshot_download(repo_id, cache_dir=tmp_path / "snapshot", token=hubsim.token)
    assert (Path(folder) / "w.safetensors").read_bytes() == WEIGHTS


def test_a_client_without_xet_downloads_the_same_bytes_through_resolve(
    hubsim, uploaded, tmp_path, lfs_client
):
    repo_id, _ = uploaded
    hubsim.server.requests.clear()
    path = hf_hub_download(repo_id, "w.safetensors", cache_dir=tmp_path, token=hubsim.token)
    assert Path(path).read_bytes() == WEIGHTS
    assert not [p for _, p, _ in _calls(hubsim) if p.startswith("/_xet")]
    # resolve answers like the Hub for a Xet file: the Xet headers on a redirect to plain storage
    url = f"{hubsim.url}/{repo_id}/resolve/main/w.safetensors"
    head = httpx.head(url, headers={"authorization": f"Bearer {hubsim.token}"})
    assert head.status_code == 302 and head.headers["x-xet-hash"] == hashes.to_hex(
        next(iter(f.hash for f in hubsim.server.xet.files.values() if f.size == len(WEIGHTS)))
    )
    assert 'rel="xet-auth"' in head.headers["link"]
    ranged = httpx.get(url, headers={"range": "bytes=1000000-1000099"}, follow_redirects=True)
    assert ranged.status_code == 206 and ranged.content == WEIGHTS[1000000:1000100]


def test_an_lfs_era_client_gets_xet_content_from_the_batch_api(hubsim, uploaded):
    repo_id, _ = uploaded
    oid = hashlib.sha256(WEIGHTS).hexdigest()
    body = {"operation": "download", "transfers": ["basic"], "objects": [{"oid": oid, "size": len(WEIGHTS)}]}
    answer = httpx.post(
        f"{hubsim.url}/{repo_id}.git/info/lfs/objects/batch",
        json=body,
        headers={"authorization": f"Bearer {hubsim.token}"},
    ).json()
    href = answer["objects"][0]["actions"]["download"]["href"]
    assert httpx.get(href).content == WEIGHTS
    upload = {**body, "operation": "upload"}  # already stored: nothing to upload through LFS
    answer = httpx.post(
        f"{hubsim.url}/{repo_id}.git/info/lfs/objects/batch",
        json=upload,
        headers={"authorization": f"Bearer {hubsim.token}"},
    ).json()
    assert "actions" not in answer["objects"][0]


def test_a_buffer_cannot_go_through_xet_so_the_client_falls_back_to_lfs(hubsim, repo_factory, caplog):
    repo_id = repo_factory()
    hubsim.server.requests.clear()
    with caplog.at_level(logging.WARNING, logger="huggingface_hub"):
        hubsim.api.upload_file(path_or_fileobj=io.BytesIO(WEIGHTS), path_in_repo="w.bin", repo_id=repo_id)
    assert "Falling back to HTTP upload" in caplog.text
    paths = [p for _, p, _ in _calls(hubsim)]
    assert f"/{repo_id}.git/info/lfs/objects/batch" in paths and not [p for p in paths if "xet" in p]


def test_upload_folder_as_a_pull_request_through_xet(hubsim, repo_factory, model_folder):
    """With Xet the client opens the PR first, then commits to `refs/pr/1` with a token for that ref."""
    repo_id = repo_factory()
    (model_folder / "model.safetensors").write_bytes(WEIGHTS)
    commit = hubsim.other_api.upload_folder(repo_id=repo_id, folder_path=model_folder, create_pr=True)
    assert commit.pr_revision == "refs/pr/1"
    tokens = [p for _, p, s in _calls(hubsim) if "/xet-write-token/" in p and s == 200]
    assert tokens  # the other user may not write to main, only to a PR
    files = hubsim.api.list_repo_files(repo_id, revision="refs/pr/1")
    assert "model.safetensors" in files and "model.safetensors" not in hubsim.api.list_repo_files(repo_id)


def test_token_endpoints_follow_the_repo_permissions(hubsim, repo_factory):
    repo_id = repo_factory()
    answer = _token(hubsim, repo_id)
    assert answer.status_code == 200
    body = answer.json()
    assert body["casUrl"] == f"{hubsim.url}/_xet/{hubsim.server.xet.id}" == answer.headers["x-xet-cas-url"]
    assert body["accessToken"] == answer.headers["x-xet-access-token"]
    assert int(answer.headers["x-xet-token-expiration"]) == body["exp"]
    assert _token(hubsim, repo_id, token=hubsim.other_token).status_code == 403  # not theirs to push to
    assert _token(hubsim, repo_id, token=hubsim.other_token, query="?create_pr=1").status_code == 200
    assert _token(hubsim, repo_id, "read", token=hubsim.other_token).status_code == 200
    assert httpx.get(f"{hubsim.url}/api/models/{repo_id}/xet-write-token/main").status_code == 401
    private = repo_factory(private=True)
    assert _token(hubsim, private, "read", token=hubsim.other_token).status_code == 404
    dataset = repo_factory(repo_type="dataset")
    auth = {"authorization": f"Bearer {hubsim.token}"}
    assert (
        httpx.get(f"{hubsim.url}/api/datasets/{dataset}/xet-write-token/main", headers=auth).status_code
        == 200
    )


def test_the_cas_takes_only_xet_tokens_and_reads_cannot_write(hubsim, repo_factory):
    repo_id = repo_factory()
    cas, read = _cas(hubsim, repo_id, "read")
    name = "0" * 64
    grant = {"length": 10, "checksum": {"algo": "crc64nvme", "value": "1"}}
    assert httpx.post(f"{cas}/v1/xorb-grants/default/{name}", json=grant, headers=read).status_code == 403
    assert httpx.post(f"{cas}/v1/xorb-grants/default/{name}", json=grant).status_code == 401
    hub_token = {"authorization": f"Bearer {hubsim.token}"}  # a Hub token is no Xet token
    assert httpx.get(f"{cas}/v1/chunks/default/{name}", headers=hub_token).status_code == 401
    hubsim.server.xet.expire_tokens()
    assert httpx.get(f"{cas}/v1/chunks/default/{name}", headers=read).status_code == 401
    gone = cas.rsplit("/", 1)[0] + "/another-hubsim"  # a CAS URL from before a restart without --data
    assert httpx.get(f"{gone}/v1/chunks/default/{name}", headers=read).status_code == 404


def _chunk_record(data: bytes) -> bytes:
    compressed = lz4.frame.compress(data)
    return (
        bytes([0])
        + len(compressed).to_bytes(3, "little")
        + bytes([1])
        + len(data).to_bytes(3, "little")
        + compressed
    )


def test_the_cas_refuses_a_xorb_that_does_not_hash_to_its_name_and_a_grant_upload_with_another_crc(
    hubsim, repo_factory
):
    repo_id = repo_factory()
    cas, write = _cas(hubsim, repo_id)
    chunks = [os.urandom(5000), os.urandom(7000)]
    body = b"".join(_chunk_record(c) for c in chunks)
    name = hashes.to_hex(hashes.xorb_hash([(hashes.chunk_hash(c), len(c)) for c in chunks]))
    wrong = hashes.to_hex(hashes.chunk_hash(b"something else"))
    refused = httpx.post(f"{cas}/v1/xorbs/default/{wrong}", content=body, headers=write)
    assert refused.status_code == 400 and "hashes to" in refused.json()["error"]
    grant = {"length": len(body), "checksum": {"algo": "crc64nvme", "value": "12345"}}
    answer = httpx.post(f"{cas}/v1/xorb-grants/default/{name}", json=grant, headers=write)
    assert answer.status_code == 201
    given = answer.json()
    put = httpx.request(given["method"], given["url"], content=body, headers=given["headers"])
    assert put.status_code == 400 and "CRC-64/NVME" in put.json()["error"]
    committed = httpx.post(f"{cas}/v1/xorb-commits/default/{name}/grant/{given['id']}", headers=write)
    assert committed.status_code == 404  # nothing was uploaded for the grant
    stored = httpx.post(f"{cas}/v1/xorbs/default/{name}", content=body, headers=write)
    assert stored.json() == {"was_inserted": True}
    assert httpx.post(f"{cas}/v1/xorb-grants/default/{name}", json=grant, headers=write).status_code == 200


def test_a_shard_naming_a_xorb_never_uploaded_is_refused(hubsim, repo_factory):
    """The spec's 400 on v1; on v2 the stream has begun, so the refusal is its final `error` frame."""
    repo_id = repo_factory()
    cas, write = _cas(hubsim, repo_id)
    data = os.urandom(9000)
    chunk = hashes.chunk_hash(data)
    missing = hashes.xorb_hash([(chunk, len(data))])
    file = shard.FileInfo(
        hashes.file_hash([(chunk, len(data))]),
        [shard.Term(missing, len(data), 0, 1)],
        [hashes.verification_hash([chunk])],
        hashes.from_hex(hashlib.sha256(data).hexdigest()),
    )
    v1 = httpx.post(f"{cas}/v1/shards", content=shard.serialize_upload(shard.Shard([file])), headers=write)
    assert v1.status_code == 400 and "was never uploaded" in v1.json()["error"]
    v2 = httpx.post(f"{cas}/v2/shards", content=shard.serialize_upload(shard.Shard([file])), headers=write)
    frames = [json.loads(line) for line in v2.text.splitlines()]
    assert v2.status_code == 200 and frames[-1]["type"] == "error" and frames[-1]["retryable"] is False
    assert hashlib.sha256(data).hexdigest() not in hubsim.server.xet.by_sha256
    garbage = httpx.post(f"{cas}/v2/shards", content=b"not a shard", headers=write)
    assert garbage.status_code == 400


def test_global_dedupe_answers_a_shard_the_client_can_match_its_chunks_against(hubsim, uploaded):
    repo_id, _ = uploaded
    cas, read = _cas(hubsim, repo_id, "read")
    [file] = [f for f in hubsim.server.xet.files.values() if f.size == len(WEIGHTS)]
    first = hubsim.server.xet.xorbs[file.terms[0].xorb].chunks[0].hash  # every file's first chunk is indexed
    answer = httpx.get(f"{cas}/v1/chunks/default/{hashes.to_hex(first)}", headers=read)
    assert answer.status_code == 200
    returned = shard.parse(answer.content)
    key = answer.content[-200 + 72 : -200 + 104]  # the footer's chunk_hash_hmac_key
    assert [x.hash for x in returned.xorbs] == [file.terms[0].xorb]
    assert returned.xorbs[0].chunks[0].hash == hashes.hmac(first, key) != first
    unknown = hashes.to_hex(hashes.chunk_hash(b"never uploaded"))
    assert httpx.get(f"{cas}/v1/chunks/default/{unknown}", headers=read).status_code == 404


def test_a_reconstruction_for_a_range_is_trimmed_to_the_chunks_that_hold_it(hubsim, uploaded):
    repo_id, _ = uploaded
    cas, read = _cas(hubsim, repo_id, "read")
    [file] = [f for f in hubsim.server.xet.files.values() if f.size == len(WEIGHTS)]
    start, end = 1_500_000, 1_600_000
    url = f"{cas}/v1/reconstructions/{hashes.to_hex(file.hash)}"
    plan = httpx.get(url, headers={**read, "range": f"bytes={start}-{end}"}).json()
    data = b""
    for term in plan["terms"]:
        [fetch] = [f for f in plan["fetch_info"][term["hash"]] if f["range"] == term["range"]]
        span = fetch["url_range"]
        assert httpx.get(fetch["url"]).status_code == 403  # the URL opens only with its Range
        raw = httpx.get(fetch["url"], headers={"range": f"bytes={span['start']}-{span['end']}"}).content
        while raw:
            size = int.from_bytes(raw[1:4], "little")
            data += lz4.frame.decompress(raw[8 : 8 + size]) if raw[4] else raw[8 : 8 + size]
            raw = raw[8 + size :]
    offset = plan["offset_into_first_range"]
    assert len(data) < len(WEIGHTS) and data[offset : offset + end - start + 1] == WEIGHTS[start : end + 1]
    beyond = httpx.get(url, headers={**read, "range": f"bytes={len(WEIGHTS)}-"})
    assert beyond.status_code == 416
