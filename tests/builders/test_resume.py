"""A worker killed in the middle of a stage loses nothing: the rerun resumes after the last finished stage.

The worker is SIGKILLed (no cleanup, as a crash or an OOM kill would end it) while it waits inside a
stage (QUANTBOT_BUILDERS_HOLD): first halfway through calibration, then halfway through export, after
the checkpoint files were written but before they were moved into place.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from buildkit import kill_when, start_worker

pytestmark = pytest.mark.slow


def records(spec: Any) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (Path(spec.work_dir) / "stages").glob("*.json")}


def test_killed_worker_resumes_after_the_last_finished_stage(builder: Any) -> None:
    spec = builder.spec("resume", "fp8")
    held = lambda stage: lambda line: line["stage"] == stage and line["message"].startswith("holding")  # noqa: E731

    kill_when(start_worker(spec, {"QUANTBOT_BUILDERS_HOLD": "quantize"}), held("quantize"))
    first = records(spec)
    assert first["fetch"]["status"] == first["load"]["status"] == "succeeded"
    assert first["quantize"]["status"] == "running" and "export" not in first

    lines = kill_when(start_worker(spec, {"QUANTBOT_BUILDERS_HOLD": "export"}), held("export"))
    assert [line["stage"] for line in lines if line["message"] == "done in an earlier run"] == [
        "fetch",
        "load",
    ]
    assert any(
        line["stage"] == "quantize" and "after an interrupted run" in line["message"] for line in lines
    )
    second = records(spec)
    assert second["quantize"]["status"] == "succeeded" and second["quantize"]["runs"] == 2
    assert second["export"]["status"] == "running"
    assert (spec.output_dir / ".export.partial").is_dir()
    assert not (spec.output_dir / "hf_quant_config.json").exists()

    done = builder.run(spec)
    assert done.returncode == 0, done.stderr[-2000:]
    resumed = [line["stage"] for line in done.progress if line["message"] == "done in an earlier run"]
    assert resumed == ["fetch", "load", "quantize"]  # calibration did not run a third time
    m = done.manifest
    runs = {s.name: (s.runs, s.resumed) for s in m.stages}
    assert runs["fetch"] == (1, True) and runs["quantize"] == (2, True)
    assert runs["export"] == (2, False) and runs["validate"] == (1, False)
    assert m.stage("export").message == "the previous run was interrupted in this stage"
    assert not (spec.output_dir / ".export.partial").exists()
    assert m.validation.ok and m.validation.perplexity.quantized > 1

    # Running a finished build again does nothing and leaves its manifest as it was.
    before = spec.manifest_path.read_bytes()
    again = builder.run(spec)
    assert again.returncode == 0 and again.progress[-1]["message"] == "already built; nothing to do"
    assert spec.manifest_path.read_bytes() == before

    # Same artifact, new engine demands: only the stages after export run again (and fail honestly here).
    strict = spec.model_copy(update={"target_sms": [90], "engines_required": True})
    assert strict.key() == spec.key()
    failed = builder.run(strict)
    assert failed.returncode == 1
    resumed = [line["stage"] for line in failed.progress if line["message"] == "done in an earlier run"]
    assert resumed == ["fetch", "load", "quantize", "export"]
    error = failed.manifest.errors[0]
    assert (error.stage, error.kind) == ("engines", "engine_not_built") and "sm90" in error.message
    assert failed.manifest.engines[0].status == "not_built"

    # Records are not synced one by one: one a power cut left empty is a stage to run again.
    (Path(spec.work_dir) / "stages" / "export.json").write_text("")
    redone = builder.run(spec)
    assert redone.returncode == 0, redone.stderr[-2000:]
    resumed = [line["stage"] for line in redone.progress if line["message"] == "done in an earlier run"]
    assert resumed == ["fetch", "load", "quantize"]
    assert redone.manifest.validation.ok


def test_killed_gptq_worker_quantizes_again_from_a_fresh_load(builder: Any) -> None:
    """The load stage's model (the one GPTQModel quantizes) is gone with the killed worker: the rerun's
    quantize loads the base model itself, and the release is the same as one built in one go."""
    spec = builder.spec("resume-gptq", "gptq")
    held = lambda line: line["stage"] == "quantize" and line["message"].startswith("holding")  # noqa: E731
    kill_when(start_worker(spec, {"QUANTBOT_BUILDERS_HOLD": "quantize"}), held)
    assert records(spec)["quantize"]["status"] == "running"

    done = builder.run(spec)
    assert done.returncode == 0, done.stderr[-2000:]
    resumed = [line["stage"] for line in done.progress if line["message"] == "done in an earlier run"]
    assert resumed == ["fetch", "load"]
    m, whole = done.manifest, builder.built("gptq").manifest
    assert m.stage("quantize").runs == 2 and m.validation.ok
    hashes = {a.path: a.sha256 for a in m.artifacts if a.path.endswith(".safetensors")}
    assert hashes and hashes == {a.path: a.sha256 for a in whole.artifacts if a.path.endswith(".safetensors")}
