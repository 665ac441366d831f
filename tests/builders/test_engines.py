"""Which engines a worker may build, and why not: decided from what is installed and which GPU is there.

These machines have neither TensorRT-LLM nor a GPU, so the installed version and the device are given to
the decision function; the end-to-end "not built" record is in test_builds.py.
"""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from builders import trtllm
from builders.spec import BuildSpec, Device

H100 = Device(kind="cuda", name="NVIDIA H100 80GB HBM3", sm=90)
CPU = Device(kind="cpu", name="AMD EPYC")
Install = Callable[[str | None, bool], None]


def spec(fmt: str = "int4_awq") -> BuildSpec:
    return BuildSpec(
        local_dir=Path("."), format=fmt, target_sms=[90], work_dir=Path("w"), output_dir=Path("o")
    )


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[[str | None, bool], None]:
    """Pretend a TensorRT-LLM version is installed, optionally with a trtllm-build on PATH."""

    def install(version: str | None, with_tool: bool) -> None:
        monkeypatch.setattr(
            trtllm, "installed_toolchain", lambda: {"tensorrt_llm": version} if version else {}
        )
        if with_tool:
            tool = tmp_path / "trtllm-build"
            tool.write_text("#!/bin/sh\nexit 0\n")
            tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
        monkeypatch.setenv("PATH", str(tmp_path) if with_tool else "/nonexistent")

    return install


def test_without_tensorrt_llm(installed: Install) -> None:
    installed(None, False)
    assert trtllm.not_built_reason(spec(), H100, 90) == "TensorRT-LLM is not installed on this worker"


def test_after_1_2_the_pytorch_backend_serves_the_checkpoint(installed: Install) -> None:
    installed("1.3.0rc1", True)
    reason = trtllm.not_built_reason(spec(), H100, 90)
    assert (
        "1.3.0rc1 has no trtllm-build" in reason
        and "PyTorch backend serves the checkpoint at the repo root" in reason
    )


def test_1_2_without_the_tool_on_path(installed: Install) -> None:
    installed("1.2.0rc5", False)
    assert "trtllm-build is not on PATH" in trtllm.not_built_reason(spec(), H100, 90)


def test_1_2_with_the_tool_needs_a_gpu_of_that_sm(installed: Install) -> None:
    installed("1.2.0rc5", True)
    assert trtllm.not_built_reason(spec(), CPU, 90) == "no CUDA GPU on this worker"
    assert "needs an sm89 GPU" in trtllm.not_built_reason(spec(), H100, 89)
    assert trtllm.not_built_reason(spec(), H100, 90) == ""  # this one would be built


def test_gptq_engines_are_never_claimed(installed: Install) -> None:
    installed("1.2.0rc5", True)
    assert "convert_checkpoint.py" in trtllm.not_built_reason(spec("gptq"), H100, 90)
