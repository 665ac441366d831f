"""What this worker is: toolchain versions, the device, and memory use per stage.

Peak RSS per stage uses Linux's resettable high-water mark (writing 5 to /proc/self/clear_refs resets
VmHWM), so each stage reports its own peak rather than the process's lifetime maximum.
"""

from __future__ import annotations

import os
import platform
import resource
from pathlib import Path
from typing import Any

from builders.spec import Device, Toolchain, installed_toolchain, python_version


def toolchain() -> Toolchain:
    """Versions from package metadata, CUDA from torch, the driver from NVML."""
    versions = installed_toolchain()
    cuda = None
    try:
        import torch

        cuda = torch.version.cuda
    except ImportError:
        pass
    return Toolchain(
        python=python_version(),
        cuda=cuda,
        driver=_driver_version(),
        platform=f"{platform.system()}-{platform.machine()}",
        **{
            name: versions.get(name)
            for name in ("torch", "transformers", "modelopt", "gptqmodel", "tensorrt_llm")
        },
    )


def _driver_version() -> str | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            version = pynvml.nvmlSystemGetDriverVersion()
        finally:
            pynvml.nvmlShutdown()
        return version.decode() if isinstance(version, bytes) else str(version)
    except Exception:  # no NVML library, no GPU, no driver: all mean "no driver to report"
        return None


def detect_device(wanted: str) -> Device:
    """The device the build runs on: the first CUDA GPU when there is one (and `wanted` allows it)."""
    import torch

    if wanted != "cpu" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return Device(
            kind="cuda",
            name=props.name,
            sm=props.major * 10 + props.minor,
            memory_bytes=props.total_memory,
            count=torch.cuda.device_count(),
            cpu_count=os.cpu_count(),
        )
    return Device(kind="cpu", name=_cpu_name(), memory_bytes=_total_memory(), cpu_count=os.cpu_count())


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _total_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return None


class StageMeter:
    """Peak RSS and CUDA peak of one stage."""

    def __init__(self) -> None:
        self._reset_ok = _reset_rss_peak()
        self._cuda = _cuda_module()
        if self._cuda is not None:
            self._cuda.reset_peak_memory_stats()

    def read(self) -> dict[str, Any]:
        rss = _rss_peak() if self._reset_ok else None
        if rss is None:  # no resettable peak: fall back to the process's lifetime peak
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        cuda = _cuda_module()
        return {
            "peak_rss_bytes": rss,
            "cuda_peak_bytes": int(cuda.max_memory_allocated()) if cuda is not None else None,
        }


def _cuda_module() -> Any:
    """torch.cuda when torch is already imported and a GPU is in use; never imports torch itself."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return torch.cuda


def _reset_rss_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _rss_peak() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None
