"""Targets: SM parsing, SM → family, local GPUs (as the driver reports them), configured SMs and memory."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from types import SimpleNamespace
from typing import NoReturn

import pynvml
import pytest

from bot.eligibility.targets import GIB, GPU, local_gpus, parse_sms, resolve_targets, target_for
from bot.errors import UnknownSM, UsageError


@pytest.mark.parametrize(
    ("text", "sms"),
    [("90", [90]), ("90,89", [90, 89]), (" sm90 , sm_120 ", [90, 120]), ("90,90,80", [90, 80])],
)
def test_parse_sms(text: str, sms: list[int]) -> None:
    assert parse_sms(text) == sms


@pytest.mark.parametrize("text", ["", "90,", "hopper", "9", "90.0", "sm-90"])
def test_parse_sms_rejects_junk(text: str) -> None:
    with pytest.raises(UsageError, match="--sm"):
        parse_sms(text)


@pytest.mark.parametrize("sm", [75, 70, 101, 999])
def test_unknown_sm_is_a_clear_error(sm: int) -> None:
    with pytest.raises(
        UnknownSM, match=f"unknown SM {sm}: the hardware matrix places only 80, 86, 87, 89, 90"
    ):
        target_for(sm)


def _nvidia_smi() -> list[tuple[int, str, int, float]]:
    """(index, name, SM, MiB) of each GPU as the driver's own tool lists it; [] without a driver or a GPU."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    query = ["--query-gpu=index,name,compute_cap,memory.total", "--format=csv,noheader,nounits"]
    done = subprocess.run([smi, *query], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        return []
    rows = [[field.strip() for field in line.split(",")] for line in done.stdout.splitlines() if line.strip()]
    return [(int(i), name, int(cap.replace(".", "")), float(mib)) for i, name, cap, mib in rows]


def test_local_gpus_are_what_the_driver_reports() -> None:
    """No GPU and no exception without an NVIDIA driver; with one, the GPUs nvidia-smi lists."""
    found = [(g.index, g.name, g.sm, g.memory_bytes / 2**20) for g in local_gpus()]
    assert found == [(i, name, sm, pytest.approx(mib, rel=0.01)) for i, name, sm, mib in _nvidia_smi()]


def test_local_gpus_reads_index_name_sm_and_memory_from_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    handles = {0: "h100", 1: "l4"}
    names = {"h100": b"NVIDIA H100 80GB HBM3", "l4": "NVIDIA L4"}  # older drivers answer bytes
    caps = {"h100": (9, 0), "l4": (8, 9)}
    memory = {"h100": 80 * GIB, "l4": 24 * GIB}
    calls: list[str] = []
    monkeypatch.setattr(pynvml, "nvmlInit", lambda: calls.append("init"))
    monkeypatch.setattr(pynvml, "nvmlShutdown", lambda: calls.append("shutdown"))
    monkeypatch.setattr(pynvml, "nvmlDeviceGetCount", lambda: len(handles))
    monkeypatch.setattr(pynvml, "nvmlDeviceGetHandleByIndex", handles.__getitem__)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetName", names.__getitem__)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetCudaComputeCapability", caps.__getitem__)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetMemoryInfo", lambda h: SimpleNamespace(total=memory[h]))
    assert local_gpus() == [GPU(0, "NVIDIA H100 80GB HBM3", 90, 80 * GIB), GPU(1, "NVIDIA L4", 89, 24 * GIB)]
    assert calls == ["init", "shutdown"]


def _raise(error: BaseException) -> Callable[..., NoReturn]:
    def fail(*_: object) -> NoReturn:
        raise error

    return fail


@pytest.mark.parametrize(
    "error",
    [pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND), OSError("libnvidia-ml.so.1: cannot open")],
)
def test_no_nvml_means_no_gpus_not_an_error(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    monkeypatch.setattr(pynvml, "nvmlInit", _raise(error))
    assert local_gpus() == []


def test_an_nvml_error_while_listing_means_no_gpus_and_nvml_is_shut_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(pynvml, "nvmlInit", lambda: calls.append("init"))
    monkeypatch.setattr(pynvml, "nvmlShutdown", lambda: calls.append("shutdown"))
    monkeypatch.setattr(pynvml, "nvmlDeviceGetCount", _raise(pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)))
    assert local_gpus() == []
    assert calls == ["init", "shutdown"]


def test_no_gpu_and_no_sm_plans_for_the_configured_sms_and_says_so() -> None:
    result = resolve_targets(None, default_sms=[80, 89, 90, 100, 120], gpus=[])
    assert [t.sm for t in result.targets] == [80, 89, 90, 100, 120]
    assert result.notes == (
        "no GPU found and no --sm given: planning for the configured SMs 80, 89, 90, 100, 120",
    )
    assert all(t.memory_bytes is None and t.gpus == () for t in result.targets)


def test_local_gpus_plus_remote_sms() -> None:
    h100 = GPU(0, "NVIDIA H100 80GB HBM3", 90, 80 * GIB)
    t4 = GPU(1, "Tesla T4", 75, 16 * GIB)
    result = resolve_targets(
        None, remote_sms=[89, 90], default_sms=[80], gpus=[t4, h100], memory_gib={89: 24.0}
    )
    assert [t.sm for t in result.targets] == [90, 89]
    local, remote = result.targets
    assert (local.family, local.gpu_name, local.memory_bytes, local.memory_source) == (
        "Hopper",
        h100.name,
        80 * GIB,
        "local GPU",
    )
    assert (remote.family, remote.gpu_name, remote.memory_bytes, remote.memory_source) == (
        "Ada Lovelace",
        None,
        24 * GIB,
        "configured",
    )
    assert result.notes == ("GPU 1 (Tesla T4, sm75) is in no family of the hardware matrix; ignored",)


def test_sm_override_wins_and_keeps_local_gpu_figures() -> None:
    h100 = GPU(0, "NVIDIA H100 80GB HBM3", 90, 80 * GIB)
    result = resolve_targets([100, 90], remote_sms=[89], gpus=[h100])
    assert [(t.sm, t.hardware_row, t.gpu_name) for t in result.targets] == [
        (100, "Blackwell(sm100)", None),
        (90, "Hopper", "NVIDIA H100 80GB HBM3"),
    ]
    assert result.notes == ()


def test_unknown_sm_in_configuration_is_an_error() -> None:
    with pytest.raises(UnknownSM):
        resolve_targets(None, remote_sms=[75], gpus=[])
