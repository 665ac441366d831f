"""This machine's GPUs, as the driver reports them: none and no exception without one."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from types import SimpleNamespace
from typing import NoReturn

import pynvml
import pytest

from bot.eligibility.targets import GIB, GPU
from bot.host.gpus import local_gpus


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
