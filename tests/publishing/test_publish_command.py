"""`quantbot publish` as a user runs it, and the build directories it refuses before touching the Hub."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.errors import BuildDirError
from bot.publishing.release import check_artifacts, load_manifest

pytestmark = pytest.mark.slow


def quantbot(hubsim, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    # the CLI's output is under test here, not the post-upload check (test_verified_releases.py)
    env = {
        **os.environ,
        "HF_ENDPOINT": hubsim.url,
        "HF_TOKEN": token or hubsim.token,
        "QUANTBOT_VERIFY_UPLOADS": "false",
    }
    return subprocess.run(
        [sys.executable, "-c", "from bot.cli import main; main()", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_publish_prints_the_pr_url(builds, upstream, hubsim, repo_factory) -> None:
    build = builds.get(upstream.repo_id, upstream.revisions[0], "fp8")
    repo_id = repo_factory("cli-target", token=hubsim.other_token)

    run = quantbot(hubsim, "publish", str(build), "--mode", "pr", "--repo", repo_id)

    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"{hubsim.url}/{repo_id}/discussions/1"
    assert run.stderr.strip().splitlines()[-1] == "open: pull request open for review"


def test_publish_prints_the_repo_url(builds, upstream, hubsim, release_repo) -> None:
    build = builds.get(upstream.repo_id, upstream.revisions[0], "gptq")
    repo_id = release_repo("cli-repo")

    run = quantbot(hubsim, "publish", str(build), "--repo", repo_id)

    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"{hubsim.url}/{repo_id}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["publish", "/nonexistent/build"], "not a build directory"),
        (["publish", ".", "--repo", "no spaces/allowed here"], "is not a valid repo id"),
        (["publish", ".", "--mode", "sideways"], "Invalid value for '--mode'"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(hubsim, args: list[str], message: str) -> None:
    run = quantbot(hubsim, *args)

    assert run.returncode == 2
    assert message in run.stderr and "Traceback" not in run.stderr


def test_a_build_without_a_manifest_is_refused(tmp_path: Path) -> None:
    (tmp_path / "trt-llm").mkdir()
    with pytest.raises(BuildDirError, match="no manifest.json .* the build did not finish"):
        load_manifest(tmp_path)


@pytest.mark.parametrize(
    ("remove", "message"),
    [
        ("started_at", r"not a complete manifest \(started_at: Field required\)"),
        ("spec", "records no build spec"),
    ],
)
def test_an_incomplete_manifest_is_refused(builds, upstream, copy_build, remove: str, message: str) -> None:
    build = copy_build(builds.get(upstream.repo_id, upstream.revisions[0], "fp8"))
    data = json.loads((build / "manifest.json").read_text())
    del data[remove]
    (build / "manifest.json").write_text(json.dumps(data))

    with pytest.raises(BuildDirError, match=message):
        load_manifest(build)


def test_a_failed_build_is_refused_with_its_error(builds, upstream, copy_build) -> None:
    build = copy_build(builds.get(upstream.repo_id, upstream.revisions[0], "fp8"))
    data = json.loads((build / "manifest.json").read_text())
    data["status"] = "failed"
    data["errors"] = [{"stage": "validate", "kind": "validation_failed", "message": "perplexity rose 80%"}]
    (build / "manifest.json").write_text(json.dumps(data))

    with pytest.raises(BuildDirError, match="did not succeed: perplexity rose 80%"):
        load_manifest(build)


def test_an_artifact_changed_after_the_build_is_refused(builds, upstream, copy_build) -> None:
    build = copy_build(builds.get(upstream.repo_id, upstream.revisions[0], "fp8"))
    manifest = load_manifest(build)
    weights = next(a for a in manifest.artifacts if a.path.endswith(".safetensors"))
    data = bytearray((build / weights.path).read_bytes())
    data[-1] ^= 0xFF  # same size, different content
    (build / weights.path).write_bytes(bytes(data))

    with pytest.raises(BuildDirError, match=f"artifact {weights.path} has changed since the build \\(sha256"):
        check_artifacts(build, manifest)


def test_the_cli_refuses_a_failed_build_before_any_upload(
    builds, upstream, copy_build, hubsim, release_repo
) -> None:
    build = copy_build(builds.get(upstream.repo_id, upstream.revisions[0], "fp8"))
    (build / "manifest.json").write_text(
        (build / "manifest.json").read_text().replace('"status": "succeeded"', '"status": "failed"')
    )
    repo_id = release_repo("never-made")

    run = quantbot(hubsim, "publish", str(build), "--repo", repo_id)

    assert (
        run.returncode == 2
        and run.stderr.startswith("Error: the build in")
        and "did not succeed" in run.stderr
    )
    assert not hubsim.api.repo_exists(repo_id)
