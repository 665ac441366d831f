"""Bad input gets the Hub's 4xx answer with a message, never a 500 (the hygiene fixture also checks
that no handler raised)."""

from __future__ import annotations

import base64
import json

import httpx
import pytest


def _ndjson(*lines: dict) -> bytes:
    return b"\n".join(json.dumps(line).encode() for line in lines)


HEADER = {"key": "header", "value": {"summary": "s", "description": ""}}


def _file(path: str, content: bytes = b"x") -> dict:
    return {
        "key": "file",
        "value": {"path": path, "content": base64.b64encode(content).decode(), "encoding": "base64"},
    }


CASES = [
    ("POST", "/api/repos/create", b"not json", 400),
    ("POST", "/api/repos/create", b"[]", 400),
    ("POST", "/api/repos/create", b"[" * 100_000, 400),
    ("POST", "/api/repos/create", b'{"name": 5}', 400),
    ("POST", "/api/repos/create", b'{"name": "bad name!"}', 400),
    ("POST", "/api/repos/create", b'{"name": "x", "type": "galaxy"}', 400),
    ("POST", "/api/repos/create", b'{"name": "x", "organization": "no-such-org"}', 404),
    ("DELETE", "/api/repos/delete", b'{"name": ["x"]}', 400),
    ("POST", "/api/models/{repo}/commit/main", b"{{{", 400),
    ("POST", "/api/models/{repo}/commit/main", _ndjson(_file("a.txt")), 400),
    (
        "POST",
        "/api/models/{repo}/commit/main",
        _ndjson(HEADER, {"key": "file", "value": {"path": "a", "content": "%%"}}),
        400,
    ),
    (
        "POST",
        "/api/models/{repo}/commit/main",
        _ndjson(HEADER, {"key": "lfsFile", "value": {"path": "w", "oid": "0" * 64}}),
        400,
    ),
    ("POST", "/api/models/{repo}/commit/main", _ndjson(HEADER, {"key": "symlink", "value": {}}), 400),
    ("POST", "/api/models/{repo}/commit/main", _ndjson(HEADER, {"key": "file", "value": "x"}), 400),
    ("POST", "/api/models/{repo}/commit/main", _ndjson(HEADER, _file("../escape.txt")), 422),
    ("POST", "/api/models/{repo}/commit/main", _ndjson(HEADER, _file("a/../escape.txt")), 400),
    ("POST", "/api/models/{repo}/commit/main", _ndjson(HEADER, _file(".git/config")), 400),
    ("POST", "/api/models/{repo}/commit/main", _ndjson(HEADER, _file(".gitattributes/inner")), 400),
    ("POST", "/api/models/{repo}/commit/main", _ndjson(HEADER, _file("README.md", b"---\na: [\n---\n")), 400),
    ("POST", "/api/models/{repo}/commit/main", _ndjson({"key": "header", "value": {"summary": ""}}), 400),
    ("POST", "/api/models/{repo}/commit/{sha}", _ndjson(HEADER, _file("a.txt")), 404),
    ("POST", "/api/models/{repo}/commit/no-such-branch", _ndjson(HEADER, _file("a.txt")), 404),
    ("POST", "/api/models/{repo}/commit/refs%2Fpr%2F99", _ndjson(HEADER, _file("a.txt")), 404),
    ("POST", "/api/models/{repo}/preupload/main", b'{"files": "x"}', 400),
    (
        "POST",
        "/api/models/{repo}/preupload/main",
        b'{"files": [{"path": "a", "sample": "%%", "size": 1}]}',
        400,
    ),
    (
        "POST",
        "/api/models/{repo}/preupload/main",
        b'{"files": [{"path": "a", "sample": "", "size": -1}]}',
        400,
    ),
    ("POST", "/api/models/{repo}/paths-info/main", b"paths=\xff\xfe", 400),
    ("GET", "/api/models/{repo}/discussions/abc", b"", 404),
    ("GET", "/api/models/{repo}/discussions/0", b"", 404),
    ("GET", "/api/models/{repo}/discussions?type=everything", b"", 400),
    ("GET", "/api/models/{repo}/discussions?p=-1", b"", 400),
    ("POST", "/api/models/{repo}/discussions", b'{"title": "ab"}', 400),
    ("POST", "/api/models/{repo}/discussions", b'{"title": "fine title", "pullRequest": "yes"}', 400),
    ("POST", "/api/models/{repo}/discussions/1/status", b'{"status": "merged"}', 400),
    ("POST", "/api/models/{repo}/discussions/1/comment", b'{"comment": ""}', 400),
    (
        "POST",
        "/api/models/{repo}/discussions/1/comment/ffffffffffffffffffffffff/edit",
        b'{"content": "x"}',
        404,
    ),
    ("POST", "/api/models/{repo}/discussions/1/merge", b"", 400),
    ("GET", "/api/models/{repo}/tree/main?cursor=abc", b"", 400),
    ("GET", "/api/models/{repo}/tree/main/%ff", b"", 400),
    ("POST", "/api/models/{repo}/branch/a..b", b"{}", 400),
    ("POST", "/api/models/{repo}/branch/ok", b'{"startingPoint": "nowhere"}', 404),
    ("DELETE", "/api/models/{repo}/branch/main", b"", 403),
    ("POST", "/api/models/{repo}/tag/main", b'{"tag": 1}', 400),
    ("PUT", "/api/models/{repo}/settings", b'{"gated": "sometimes"}', 400),
    ("PUT", "/api/models/{repo}/settings", b'{"visibility": "secret"}', 400),
    ("GET", "/api/models?sort=size", b"", 400),
    ("GET", "/api/models/{repo}/xet-read-token/no-such-branch", b"", 404),
    ("GET", "/api/models/{repo}/xet-write-token/{sha}", b"", 404),  # commits go to branches and PR refs
    ("PUT", "/_xet-storage/uploads/no-such-grant?sig=x", b"x", 403),
    ("GET", "/_xet-storage/xorbs/" + "0" * 64 + "?ranges=0-1&sig=x", b"", 403),
    ("GET", "/no/such/route/at/all", b"", 404),
    ("PATCH", "/api/models/{repo}", b"", 405),
]


@pytest.fixture
def raw(hubsim, repo_factory):
    """(client with the default user's token, a fresh repo with one discussion, its head sha)."""
    repo_id = repo_factory()
    hubsim.api.create_discussion(repo_id, "a discussion")
    with httpx.Client(base_url=hubsim.url, headers={"authorization": f"Bearer {hubsim.token}"}) as client:
        yield client, repo_id, hubsim.api.model_info(repo_id).sha


@pytest.mark.parametrize(
    ("method", "path", "body", "status"), CASES, ids=[f"{m} {p} {b[:30]!r}" for m, p, b, _ in CASES]
)
def test_bad_requests_get_a_clear_4xx(raw, method, path, body, status):
    client, repo_id, sha = raw
    response = client.request(method, path.format(repo=repo_id, sha=sha), content=body)
    assert response.status_code == status, response.text
    assert response.json()["error"]
    assert response.headers["x-error-message"]


def test_validate_yaml_answers_json_even_when_invalid(hubsim):
    bad = httpx.post(
        f"{hubsim.url}/api/validate-yaml", json={"content": "---\nx: [\n---\n", "repoType": "model"}
    )
    assert bad.status_code == 400 and bad.json()["errors"][0]["message"].startswith("Invalid YAML")
    assert httpx.post(f"{hubsim.url}/api/validate-yaml", json={"content": 3}).json()["errors"]
    assert httpx.post(f"{hubsim.url}/api/validate-yaml", content=b"{").status_code == 400


def test_unknown_auth_scheme_is_a_401(hubsim):
    answer = httpx.get(f"{hubsim.url}/api/whoami-v2", headers={"authorization": "Basic dXNlcjpwdw=="})
    assert answer.status_code == 401


def test_keep_alive_connection_survives_an_ignored_body(hubsim, repo_factory):
    """The client reuses one connection: a body the route does not need must still be consumed."""
    repo_id = repo_factory()
    with httpx.Client(base_url=hubsim.url) as client:
        for _ in range(3):
            assert client.request("GET", f"/api/models/{repo_id}", content=b"x" * 70_000).status_code == 200
