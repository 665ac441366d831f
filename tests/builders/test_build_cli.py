"""`quantbot build`: the command a user runs turns the tiny upstream into validated artifacts.

The three builds read here (int4_awq, fp8, gptq) are the session's shared builds, made through this
command; test_builds.py checks their files, these tests check what the command says and how it exits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from builders.spec import BuildSpec

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("fmt", ["int4_awq", "fp8", "gptq"])
def test_build_prints_the_manifest_path_and_a_summary(builder: Any, fmt: str) -> None:
    result = builder.built(fmt)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert f"manifest: {result.spec.manifest_path}\n" in out
    assert f"status: succeeded — {fmt} of {builder.upstream.repo_id}@{builder.upstream.sha}" in out
    ppl = result.manifest.validation.perplexity
    assert f"base {ppl.base:.3f}, quantized {ppl.quantized:.3f}" in out
    assert "engine sm90: not_built" in out
    assert result.manifest.spec.revision == builder.upstream.sha  # "main" was pinned to its sha
    assert "[quantize]" in result.stderr  # one progress line per stage when stderr is not a terminal


def test_unknown_format_is_a_usage_error(builder: Any) -> None:
    done = builder.cli("cli-bad-format", builder.upstream.repo_id, "--format", "int3")
    assert done.returncode == 2 and "Invalid value for '--format'" in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_revision_is_a_one_line_error(builder: Any) -> None:
    done = builder.cli(
        "cli-bad-rev", builder.upstream.repo_id, "--format", "fp8", "--revision", "no-such-branch"
    )
    assert done.returncode == 2
    assert done.stderr.startswith("Error: revision not found") and done.stderr.count("\n") == 1


def test_not_a_model_is_a_usage_error(builder: Any, tmp_path: Any) -> None:
    done = builder.cli("cli-bad-source", "./nowhere/at/all", "--format", "fp8")
    assert done.returncode == 2 and "neither a model folder nor a Hub repo id" in done.stderr


def test_a_failed_build_exits_non_zero_with_the_manifest_error(builder: Any, tiny_model_dir: Any) -> None:
    done = builder.cli("cli-no-cuda", str(tiny_model_dir), "--format", "fp8", "--device", "cuda")
    assert done.returncode == 1
    assert "status: failed" in done.stdout
    assert (
        "Error: build failed in fetch: the spec asks for CUDA but this worker has no CUDA GPU" in done.stderr
    )


@pytest.mark.parametrize("fmt", ["fp8", "gptq"])
def test_a_build_leaves_nothing_outside_its_work_and_output_folders(builder: Any, fmt: str) -> None:
    """GPTQModel writes its logs into `logs/` of the current directory: the build's work dir, not the
    folder `quantbot build` was started in (nor the output folder, which is the release)."""
    result = builder.built(fmt)
    assert result.returncode == 0, result.stderr[-3000:]
    started_in = Path(result.spec.work_dir).parent / "cwd"
    assert started_in.is_dir() and not list(started_in.iterdir())
    assert (Path(result.spec.work_dir) / "worker.log").is_file()
    if fmt == "gptq":
        assert list((Path(result.spec.work_dir) / "logs").glob("*.log")), "GPTQModel's logs"
    assert not (Path(result.spec.output_dir) / "logs").exists()


def test_without_a_gpu_the_default_calibration_is_the_cpus(builder: Any, tmp_path: Path) -> None:
    """The spec written for the worker holds the CPU's calibration size unless an option names one; here the
    build stops in its first stage (a folder without weights), which is all the spec needs."""
    from bot.commands.build import CPU_CALIBRATION, _has_gpu

    if _has_gpu("auto"):
        pytest.skip("this machine has a GPU: the calibration size is ModelOpt's default")
    folder = tmp_path / "no-weights"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama", "architectures": ["LlamaForCausalLM"]}')
    for name, args, expected in (
        ("cpu-defaults", [], (CPU_CALIBRATION["calib_samples"], CPU_CALIBRATION["calib_seq_len"])),
        ("cpu-samples", ["--calib-samples", "8"], (8, CPU_CALIBRATION["calib_seq_len"])),
        ("cpu-both", ["--calib-samples", "8", "--calib-seq-len", "64"], (8, 64)),
    ):
        done = builder.cli(name, str(folder), "--format", "gptq", *args)
        assert done.returncode != 0 and "Traceback" not in done.stderr
        recipe = BuildSpec.read(builder.root / name / "work" / "spec.json").recipe
        assert (recipe.calib_samples, recipe.calib_seq_len) == expected
        assert (
            f"note: no GPU: calibrating on {expected[0]} samples of {expected[1]} tokens" in done.stderr
        ) == (name != "cpu-both")
