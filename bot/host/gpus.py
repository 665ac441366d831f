"""The NVIDIA GPUs of this machine, as NVML (nvidia-ml-py's `pynvml`) reports them.

A host's own question: the worker's seats, the local transport's slots, and the targets the bot plans for
when it builds here are all read from it. A machine without an NVIDIA driver has none, never an error.
"""

from __future__ import annotations

from bot.eligibility.targets import GPU


def local_gpus() -> list[GPU]:
    """The NVIDIA GPUs on this machine; [] when NVML or its driver library is absent."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except (pynvml.NVMLError, OSError):
        return []
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle).total
            gpus.append(
                GPU(index, name.decode() if isinstance(name, bytes) else name, major * 10 + minor, memory)
            )
        return gpus
    except pynvml.NVMLError:
        return []
    finally:
        pynvml.nvmlShutdown()
