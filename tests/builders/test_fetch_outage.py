"""The fetch stage waits out a Hub that is down, failing or rate limiting (retried with backoff inside the
build), and fails at once, with its reason, on what waiting cannot fix; a calibration read the Hub fails is
the Hub's failure (the bot tries the build again later), not the dataset's. Against hubsim over HTTP."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from builders import fetch
from builders.calibration import fetch_calibration
from builders.failures import BuildFailure
from builders.spec import DEFAULT_CALIBRATION, BuildSpec, Recipe
from builders.tiny import calibration_text_path


@pytest.fixture
def snapshot_repo(hubsim, repo_factory) -> tuple[str, str]:
    repo_id = repo_factory("fetch-outage")
    hubsim.api.upload_file(
        path_or_fileobj=b'{"model_type": "llama"}', path_in_repo="config.json", repo_id=repo_id
    )
    commit = hubsim.api.upload_file(
        path_or_fileobj=b"\0" * 64, path_in_repo="model.safetensors", repo_id=repo_id
    )
    return repo_id, commit.oid


def _spec(repo_id: str, sha: str, tmp_path: Path) -> BuildSpec:
    return BuildSpec(
        repo_id=repo_id, revision=sha, format="gptq", work_dir=tmp_path / "work", output_dir=tmp_path / "out",
        cache_dir=tmp_path / "cache", recipe=Recipe(calib_dataset=str(calibration_text_path())),
    )  # fmt: skip


def test_a_hub_failing_for_a_while_is_waited_out(hubsim, snapshot_repo, tmp_path) -> None:
    repo_id, sha = snapshot_repo
    fault = hubsim.fail(r"/api/models/.*/revision/", 503, method="GET", times=2)
    said: list[str] = []
    details = fetch.fetch(_spec(repo_id, sha, tmp_path), lambda _, message: said.append(message))
    assert fault.times == 0 and details["files"] == ["config.json", "model.safetensors"]
    assert said[:2] == [
        "the Hub is unavailable (503); trying again in 1 s",
        "the Hub is unavailable (503); trying again in 2 s",
    ]


def test_an_outage_longer_than_the_wait_fails_as_hub_unavailable(
    hubsim, snapshot_repo, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo_id, sha = snapshot_repo
    monkeypatch.setattr(fetch, "RETRY_FOR_S", 2.5)
    hubsim.fail(r"/api/models/.*/revision/", 503, method="GET", times=100)
    started = time.monotonic()
    with pytest.raises(BuildFailure) as failed:
        fetch.fetch(_spec(repo_id, sha, tmp_path), lambda *_: None)
    assert failed.value.kind == "hub_unavailable" and not failed.value.bad_input  # the bot retries it later
    assert time.monotonic() - started < 10


def test_a_missing_repo_fails_at_once(hubsim, tmp_path) -> None:
    started = time.monotonic()
    with pytest.raises(BuildFailure) as failed:
        fetch.fetch(_spec(f"{hubsim.user}/no-such-model", "0" * 40, tmp_path), lambda *_: None)
    assert failed.value.kind == "repo_not_found" and failed.value.bad_input
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("status", [503, 429])
def test_a_calibration_read_the_hub_fails_is_the_hubs_failure_not_the_datasets(
    hubsim, calibration_dataset: str, tmp_path: Path, status: int
) -> None:
    spec = _spec("any/model", "0" * 40, tmp_path).model_copy(
        update={"recipe": Recipe(calib_dataset=DEFAULT_CALIBRATION, calib_samples=4)}
    )
    hubsim.fail(r"/api/datasets/", status, method="GET", times=100)
    with pytest.raises(BuildFailure) as failed:
        fetch_calibration(spec, lambda *_: None)
    assert failed.value.kind == "hub_unavailable" and not failed.value.bad_input  # the bot tries again later
    assert DEFAULT_CALIBRATION in failed.value.message and "--calib" in failed.value.message  # the way out
    hubsim.server.faults.clear()
    missing = spec.model_copy(
        update={"recipe": Recipe(calib_dataset="nobody/no-such-dataset", calib_samples=4)}
    )
    with pytest.raises(BuildFailure) as refused:
        fetch_calibration(missing, lambda *_: None)
    assert refused.value.kind == "calibration_unavailable" and refused.value.bad_input  # no wait helps here
