"""The per-SM serving check: where each runtime may run and why not, and the CPU transformers path for real.

These machines have no GPU and none of vLLM, SGLang or TensorRT-LLM: the decisions are shown with the
device given (and, for TensorRT-LLM's version, the installed version given, as test_engines.py does); the GPTQ
release is loaded by repo id from hubsim and generates on CPU in `python -m builders serve`, as a CPU worker
runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from buildkit import Builder

from builders import serving_check
from builders.spec import Device, ServingRecord, ServingRequest, ServingRuntime

H100 = Device(kind="cuda", name="NVIDIA H100 80GB HBM3", sm=90)
CPU = Device(kind="cpu", name="AMD EPYC")
SHA = "0123456789abcdef0123456789abcdef01234567"
VLLM = ServingRuntime(id="vllm", name="vLLM")
TRTLLM = ServingRuntime(id="trtllm_pytorch", name="TensorRT-LLM (PyTorch backend)")
HF = ServingRuntime(id="transformers", name="transformers + GPTQModel / optimum", cpu=True)


def request(
    sm: int, *runtimes: ServingRuntime, repo_id: str = "org/model", revision: str = SHA
) -> ServingRequest:
    return ServingRequest(
        repo_id=repo_id,
        revision=revision,
        sm=sm,
        runtimes=list(runtimes),
        prompt="The future of AI is",
        max_new_tokens=8,
    )


def test_a_runtime_not_installed_or_without_its_gpu_is_not_run_and_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert serving_check._installed(("vllm",)) is None  # this machine has none: nothing below is launched
    [vllm] = serving_check.check([request(90, VLLM)], H100)
    assert (vllm.status, vllm.reason) == ("not_run", "vLLM is not installed on this worker")
    assert vllm.load_s is None and vllm.tokens_per_s is None and vllm.peak_gpu_memory_bytes is None

    monkeypatch.setattr(serving_check, "_installed", lambda _: "1.3.0")
    on_cpu, other_sm = serving_check.check([request(90, TRTLLM)], CPU) + serving_check.check(
        [request(89, TRTLLM)], H100
    )
    assert (on_cpu.status, on_cpu.reason) == ("not_run", "no CUDA GPU on this worker")
    assert on_cpu.version == "1.3.0"
    assert other_sm.reason == "this worker's GPU is sm90 (NVIDIA H100 80GB HBM3), not sm89"


def test_tensorrt_llm_up_to_1_2_builds_engines_instead(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serving_check, "_installed", lambda _: "1.2.0rc5")
    [record] = serving_check.check([request(90, TRTLLM)], H100)
    assert record.status == "not_run" and "builds engines (trtllm-build)" in record.reason
    assert "TensorRT-LLM ≥ 1.3" in record.reason


def test_a_record_that_did_not_run_cannot_carry_a_figure() -> None:
    with pytest.raises(ValueError, match="records no figure"):
        ServingRecord(
            sm=90, runtime="vllm", runtime_name="vLLM", status="not_run", reason="x", tokens_per_s=1
        )
    with pytest.raises(ValueError, match="says why"):
        ServingRecord(sm=90, runtime="vllm", runtime_name="vLLM", status="failed")


@pytest.mark.slow
def test_a_gptq_release_loads_by_repo_id_and_generates_on_a_cpu_worker(
    builder: Builder, hubsim: Any, tmp_path: Path
) -> None:
    built = builder.built("gptq")
    assert built.manifest.ok
    repo_id = f"{hubsim.user}/served-{uuid.uuid4().hex[:8]}"
    hubsim.api.create_repo(repo_id)
    commit = hubsim.api.upload_folder(
        repo_id=repo_id, folder_path=built.out, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.jinja"]
    )
    asked = [
        request(90, VLLM, HF, repo_id=repo_id, revision=commit.oid),
        request(89, HF, repo_id=repo_id, revision=commit.oid),
    ]
    requests_path, result_path = tmp_path / "requests.json", tmp_path / "result.json"
    requests_path.write_text(json.dumps([r.model_dump(mode="json") for r in asked]))
    done = subprocess.run(
        [sys.executable, "-m", "builders", "serve", str(requests_path), str(result_path)],
        capture_output=True,
        text=True,
        timeout=600,
        env=os.environ | {"CUDA_VISIBLE_DEVICES": ""},  # a CPU worker, whatever GPU the caller has
    )
    assert done.returncode == 0, done.stderr[-2000:]
    vllm, cpu, again = [ServingRecord.model_validate(r) for r in json.loads(result_path.read_text())]
    assert (vllm.runtime, vllm.status, vllm.reason) == (
        "vllm",
        "not_run",
        "vLLM is not installed on this worker",
    )
    assert (cpu.status, cpu.device, cpu.device_sm, cpu.sm) == ("passed", "cpu", None, 90), cpu.reason
    assert cpu.revision == commit.oid and cpu.version
    assert cpu.download_s is not None and cpu.download_s >= 0  # downloaded apart, into the Hub cache
    assert cpu.load_s and cpu.load_s > 0 and cpu.new_tokens and cpu.new_tokens > 0
    # tokens/s comes from the unrounded time, generate_s is recorded to the millisecond (a fast CPU
    # generates in a few hundredths of a second, where that rounding alone is several percent)
    assert cpu.generate_s is not None
    slowest = cpu.new_tokens / (cpu.generate_s + 5e-4)
    fastest = cpu.new_tokens / max(cpu.generate_s - 5e-4, 1e-6)
    assert slowest * 0.99 <= cpu.tokens_per_s <= fastest * 1.01
    assert cpu.peak_gpu_memory_bytes is None  # no GPU: no GPU figure
    # the same CPU is not measured again for the next SM
    assert (again.status, again.reason) == ("not_run", "measured once on this worker's CPU, under sm90")
