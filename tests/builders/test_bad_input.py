"""Bad input ends with a clear error in the manifest and a non-zero exit, fast, never a hang."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from buildkit import WORKER, parse_progress

pytestmark = pytest.mark.slow


def failure(result: Any) -> Any:
    m = result.manifest
    assert m.status == "failed" and len(m.errors) == 1, m.errors
    return m.errors[0]


def test_unknown_format_is_refused_before_anything_runs(builder: Any, tmp_path: Path) -> None:
    import subprocess

    out = tmp_path / "out"
    raw = {
        "repo_id": "a/b",
        "revision": "0" * 40,
        "format": "int3",
        "work_dir": str(tmp_path / "w"),
        "output_dir": str(out),
    }
    (tmp_path / "spec.json").write_text(json.dumps(raw))
    done = subprocess.run([*WORKER, str(tmp_path / "spec.json")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert parse_progress(done.stdout)[-1]["status"] == "failed"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["spec"] is None
    error = manifest["errors"][0]
    assert error["kind"] == "invalid_spec" and error["bad_input"] and "format" in error["message"]
    assert not (tmp_path / "w").exists()


def test_a_revision_that_does_not_exist(builder: Any) -> None:
    spec = builder.spec("bad-revision", "fp8").model_copy(update={"revision": "0" * 40})
    result = builder.run(spec, timeout=120)
    assert result.returncode == 2
    error = failure(result)
    assert (error.stage, error.kind, error.bad_input) == ("fetch", "revision_not_found", True)
    assert "0" * 40 in error.message


def test_a_repo_that_does_not_exist(builder: Any, hubsim: Any) -> None:
    spec = builder.spec("bad-repo", "fp8").model_copy(update={"repo_id": f"{hubsim.user}/no-such-model"})
    result = builder.run(spec, timeout=120)
    assert result.returncode == 2 and failure(result).kind == "repo_not_found"


def test_a_repo_without_safetensors_is_refused_unless_pickle_is_allowed(
    builder: Any, hubsim: Any, repo_factory: Any, tmp_path: Path
) -> None:
    repo_id = repo_factory("pickled")
    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(builder.upstream.model_dir / "config.json", folder)
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    sha = hubsim.api.upload_folder(folder_path=folder, repo_id=repo_id).oid
    spec = builder.spec("pickled", "fp8").model_copy(update={"repo_id": repo_id, "revision": sha})
    result = builder.run(spec, timeout=120)
    assert result.returncode == 2
    error = failure(result)
    assert (
        error.kind == "no_safetensors"
        and "pytorch_model.bin" in error.message
        and "allow_pickle" in error.message
    )
    assert result.manifest.source.downloaded_bytes == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"architectures": None}, "architectures"),
        ({"architectures": ["GPT2LMHeadModel"]}, "neither a causal language model"),
        (
            {"architectures": ["FooForCausalLM"], "model_type": "llama"},
            "ModelOpt cannot export FooForCausalLM",
        ),
    ],
)
def test_unsupported_architectures(builder: Any, tmp_path: Path, change: dict, message: str) -> None:
    model = tmp_path / "model"
    shutil.copytree(builder.upstream.model_dir, model)
    config = json.loads((model / "config.json").read_text()) | change
    (model / "config.json").write_text(json.dumps(config))
    result = builder.run(builder.spec(f"arch-{tmp_path.name}", "fp8", local=model), timeout=180)
    assert result.returncode == 2
    error = failure(result)
    assert (error.stage, error.kind) == ("load", "unsupported_architecture") and message in error.message


def test_not_enough_disk_fails_before_downloading_with_the_numbers(builder: Any) -> None:
    spec = builder.spec("no-disk", "fp8").model_copy(
        update={"disk_reserve_bytes": 10**18, "cache_dir": builder.root / "empty-cache"}
    )
    result = builder.run(spec, timeout=120)
    assert result.returncode == 1
    error = failure(result)
    assert (error.stage, error.kind) == ("fetch", "disk_full")
    assert re.search(
        r"needs [\d.]+ KiB and 909494.7 TiB must stay free, but only [\d.]+ [KMGT]iB is free", error.message
    )
    assert not any((builder.root / "empty-cache").rglob("*.safetensors"))


def test_cuda_requested_on_a_machine_without_one(builder: Any) -> None:
    result = builder.run(builder.spec("no-cuda", "fp8", device="cuda"), timeout=120)
    assert result.returncode == 1 and failure(result).kind == "no_cuda"


def test_cuda_oom_is_retried_once_with_a_smaller_batch(builder: Any) -> None:
    """The OOM is injected (QUANTBOT_BUILDERS_FAULT): this machine has no GPU to run out of."""
    result = builder.run(builder.spec("oom-once", "fp8"), env={"QUANTBOT_BUILDERS_FAULT": "cuda_oom"})
    assert result.returncode == 0, result.stderr[-2000:]
    calib = result.manifest.quantization.calibration
    assert (calib.batch_size, calib.oom_retries) == (2, 1)
    assert any("retrying with 2" in line["message"] for line in result.progress)
