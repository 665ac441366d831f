"""Fault injection: 429 and 5xx on chosen routes, seen through the client's own retry logic."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import HfHubHTTPError


def test_429_on_preupload_is_retried_by_the_client(hubsim, repo_factory):
    repo_id = repo_factory()
    hubsim.fail("/preupload/", status=429, retry_after=0)
    hubsim.server.requests.clear()
    commit = hubsim.api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo_id)
    assert hubsim.api.model_info(repo_id).sha == commit.oid
    preuploads = [status for method, path, status in hubsim.server.requests if "/preupload/" in path]
    assert preuploads == [429, 200]


def test_500_surfaces_as_hf_hub_http_error_then_recovers(hubsim, repo_factory):
    repo_id = repo_factory()
    hubsim.fail(f"^/api/models/{repo_id}$", status=500, method="GET")
    with pytest.raises(HfHubHTTPError) as excinfo:
        hubsim.api.model_info(repo_id)
    assert excinfo.value.response.status_code == 500
    assert "injected" in excinfo.value.server_message
    assert hubsim.api.model_info(repo_id).id == repo_id  # the fault was for one call only


def test_a_failing_first_head_gets_one_more_try(hubsim, repo_factory, tmp_path: Path):
    repo_id = repo_factory()
    hubsim.api.upload_file(path_or_fileobj=b"w", path_in_repo="w.txt", repo_id=repo_id)
    hubsim.fail("/resolve/main/w.txt", status=503, method="HEAD")
    hubsim.server.requests.clear()
    path = hf_hub_download(repo_id, "w.txt", token=hubsim.token, cache_dir=tmp_path)
    assert Path(path).read_bytes() == b"w"
    calls = [
        (method, status) for method, url_path, status in hubsim.server.requests if url_path.endswith("/w.txt")
    ]
    assert calls == [("HEAD", 503), ("HEAD", 200), ("GET", 200)]


def test_admin_endpoint_arms_a_rate_limit_with_the_hubs_headers(hubsim):
    armed = httpx.post(
        f"{hubsim.url}/_hubsim/faults", json={"path": "whoami", "status": 429, "retry_after": 7}
    )
    assert armed.status_code == 200 and armed.json()["times"] == 1
    assert [f["path"] for f in httpx.get(f"{hubsim.url}/_hubsim/faults").json()] == ["whoami"]
    with pytest.raises(HfHubHTTPError) as excinfo:
        hubsim.api.whoami()
    headers = excinfo.value.response.headers
    assert excinfo.value.response.status_code == 429
    assert headers["ratelimit"] == '"api";r=0;t=7' and headers["retry-after"] == "7"
    assert httpx.get(f"{hubsim.url}/_hubsim/faults").json() == []
    httpx.post(f"{hubsim.url}/_hubsim/faults", json={"path": ".*", "status": 503, "times": 5})
    assert httpx.delete(f"{hubsim.url}/_hubsim/faults").status_code == 200
    assert hubsim.api.whoami()["name"] == hubsim.user


@pytest.mark.parametrize(
    "body", [{"status": 200}, {"status": "x"}, {"path": "(", "status": 503}, {"times": 0}], ids=str
)
def test_bad_fault_definitions_are_refused(hubsim, body):
    assert httpx.post(f"{hubsim.url}/_hubsim/faults", json=body).status_code == 400
