"""Faults on the Xet path of a release, through the bot's own Hub client against hubsim's CAS.

hf_xet retries every CAS request itself; what fails through its retries reaches the bot as its typed
transient errors (no second budget: `bot.hub`), and the publish waits and is tried again later. Whatever
happens, no commit names content the CAS does not hold. Uploads that must exhaust hf_xet's retries run in
a child process with a small retry budget (hf_xet reads it once per process), as does the one killed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bot.errors import HubUnavailable, transient

MIB = 1024 * 1024
UPLOAD = """
import json, sys
from pathlib import Path
from bot.errors import transient
from bot.hub import Hub
hub = Hub(endpoint=sys.argv[1], token=sys.argv[2])
try:
    hub.upload_folder(sys.argv[3], Path(sys.argv[4]), commit_message="weights")
    print(json.dumps({"ok": True}))
except Exception as e:
    print(json.dumps({"error": type(e).__name__, "transient": transient(e), "message": str(e)}))
"""


def _folder(tmp_path: Path, size: int = 3 * MIB) -> Path:
    folder = tmp_path / "release"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(os.urandom(size))
    (folder / "config.json").write_text('{"model_type": "llama"}')
    return folder


def _paths(hubsim) -> list[str]:
    return [path for _, path, _ in hubsim.server.requests]


def _child_upload(hubsim, repo_id: str, folder: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", UPLOAD, hubsim.url, hubsim.token, repo_id, str(folder)],
        env={**os.environ, "HF_XET_CLIENT_RETRY_BASE_DELAY": "50ms", **env},
        stdout=subprocess.PIPE,
        text=True,
    )


def _committed(hubsim, repo_id: str) -> set[str]:
    return set(hubsim.api.list_repo_files(repo_id))


def test_a_cas_that_fails_once_costs_a_client_retry_and_the_release_lands(
    hub, hubsim, repo_factory, tmp_path
):
    repo_id = repo_factory("xet-500")
    fault = hubsim.fail(r"^/_xet/[^/]+/v2/shards$", 500, method="POST", times=1)
    hub.upload_folder(repo_id, _folder(tmp_path), commit_message="weights")
    assert fault not in hubsim.server.faults.list()  # it was answered, and hf_xet tried again
    [info] = hubsim.api.get_paths_info(repo_id, ["model.safetensors"])
    assert info.xet_hash and info.size == 3 * MIB


@pytest.mark.parametrize(
    ("path", "status", "error"),
    [
        (r"^/_xet/[^/]+/v1/xorb-grants/", 429, "HubRateLimited"),
        (r"^/_xet/[^/]+/v1/xorb-grants/", 500, "HubUnavailable"),
        (r"/xet-write-token/", 429, "HubRateLimited"),  # the Hub's token route, which hf_xet calls itself
    ],
)
def test_a_cas_that_keeps_failing_fails_the_upload_as_transient_and_commits_nothing(
    hubsim, repo_factory, tmp_path, path, status, error
):
    repo_id = repo_factory(f"xet-{status}")
    fault = hubsim.fail(path, status, times=100)
    child = _child_upload(hubsim, repo_id, _folder(tmp_path), HF_XET_CLIENT_RETRY_MAX_ATTEMPTS="2")
    outcome = json.loads(child.communicate(timeout=120)[0])
    assert outcome["error"] == error and outcome["transient"], outcome  # the publish waits, tried again
    assert 100 - fault.times == 3  # hf_xet's own budget (the request and 2 retries), and no second one
    assert _committed(hubsim, repo_id) == {".gitattributes"}


@pytest.fixture
def short_tokens(hubsim):
    """Xet tokens that expire 3 s after they are handed out (the Hub's last an hour)."""
    hubsim.server.xet.token_ttl_s = 3
    yield
    hubsim.server.xet.token_ttl_s = 3600


def test_a_token_that_expires_mid_upload_is_refreshed_and_the_upload_lands(
    hub, hubsim, repo_factory, tmp_path, short_tokens
):
    repo_id = repo_factory("xet-expiry")
    hubsim.server.requests.clear()
    hub.upload_folder(repo_id, _folder(tmp_path, 70 * MIB), commit_message="weights")
    tokens = [p for p in _paths(hubsim) if p == f"/api/models/{repo_id}/xet-write-token/main"]
    assert len(tokens) >= 2  # the first one expired while the upload went on
    assert "model.safetensors" in _committed(hubsim, repo_id)


def test_a_token_revoked_mid_upload_fails_it_as_transient_and_a_retry_lands(
    hub, hubsim, repo_factory, tmp_path
):
    repo_id = repo_factory("xet-revoked")
    folder = _folder(tmp_path, 70 * MIB)
    hubsim.server.requests.clear()

    def revoke_at_first_xorb() -> None:
        deadline = time.monotonic() + 60
        while not any("/xorb-grants/" in p for p in _paths(hubsim)) and time.monotonic() < deadline:
            time.sleep(0.002)
        hubsim.server.xet.expire_tokens()

    threading.Thread(target=revoke_at_first_xorb, daemon=True).start()
    with pytest.raises(HubUnavailable) as failed:
        hub.upload_folder(repo_id, folder, commit_message="weights")
    assert transient(failed.value) and "401" in str(failed.value)
    assert _committed(hubsim, repo_id) == {".gitattributes"}
    hub.upload_folder(repo_id, folder, commit_message="weights")  # what the publish's next try does
    assert "model.safetensors" in _committed(hubsim, repo_id)


def test_a_shard_naming_a_lost_xorb_is_refused_and_nothing_is_committed(hub, hubsim, repo_factory, tmp_path):
    """The client dedupes against a xorb the CAS no longer holds: its shard is refused, no commit."""
    first, second = repo_factory("xet-first"), repo_factory("xet-second")
    folder = _folder(tmp_path)
    hub.upload_folder(first, folder, commit_message="weights")
    [info] = hubsim.api.get_paths_info(first, ["model.safetensors"])
    stored = hubsim.server.xet.file_by_sha256(info.lfs.sha256)
    for term in stored.terms:
        hubsim.server.xet.lose_xorb(term.xorb)
    with pytest.raises(Exception, match="was never uploaded"):  # noqa: B017 (hf_xet's RuntimeError)
        hub.upload_folder(second, folder, commit_message="weights")
    assert _committed(hubsim, second) == {".gitattributes"}


def test_a_client_killed_mid_upload_leaves_no_commit_and_a_rerun_uploads_no_xorb_twice(
    hubsim, repo_factory, tmp_path
):
    repo_id = repo_factory("xet-killed")
    folder = _folder(tmp_path, 140 * MIB)  # three xorbs
    hubsim.server.requests.clear()
    child = _child_upload(hubsim, repo_id, folder)
    deadline = time.monotonic() + 120
    while not any("/xorb-commits/" in p for p in _paths(hubsim)) and time.monotonic() < deadline:
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert _committed(hubsim, repo_id) == {".gitattributes"}
    before = dict(hubsim.server.xet.stats.xorb_bodies)
    rerun = _child_upload(hubsim, repo_id, folder)
    assert json.loads(rerun.communicate(timeout=300)[0]) == {"ok": True}
    assert "model.safetensors" in _committed(hubsim, repo_id)
    after = hubsim.server.xet.stats.xorb_bodies
    assert all(after[name] == 1 for name in after if name in before)  # stored ones were not sent again
