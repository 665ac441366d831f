"""A build process started before its build: it pays the toolchain's import while idle, then runs one build.

`python -m builders warm TOOLCHAIN --log FILE` imports torch, transformers and the toolchain (GPTQModel,
ModelOpt, or torch alone for an engine) with its stderr in FILE, then waits for one JSON line on stdin:
the builder command to run (`["run", SPEC]`, `["engine", SPEC, "--sm", "89", …]`) and the build's log. It
moves what it wrote so far into that log, points its stderr there, and runs the command in this process
exactly as `python -m builders …` would, then exits. Nothing is forked: each build still has a process of
its own that no other build ever ran in, so a CUDA crash or an OOM ends that build and nothing else, and
CUDA is first touched by the build itself. An owner that goes away closes stdin: the spare exits unused.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

# What each kind of build imports first; a module that is not installed is left to the build to report.
PRELOADS: dict[str, tuple[str, ...]] = {
    "gptq": ("torch", "transformers", "gptqmodel"),
    "modelopt": ("torch", "transformers", "modelopt.torch.quantization", "modelopt.torch.export"),
    "engine": ("torch", "tensorrt_llm"),
}


def toolchain_for(fmt: str, argv: list[str] | None) -> str:
    """The preload a builder command wants: an engine task's, or its format's quantizer's."""
    if argv and argv[0] == "engine":
        return "engine"
    return "gptq" if fmt == "gptq" else "modelopt"


READY = "warm: imported"  # the line a spare writes to its log once its imports are done


def main(toolchain: str, log: Path, builder: Callable[[list[str]], int]) -> int:
    """Import, wait for the order, then run it with `builder` (`python -m builders`'s own main)."""
    started, loaded = time.monotonic(), []
    for name in PRELOADS[toolchain]:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
            loaded.append(name)
    took = time.monotonic() - started
    print(f"{READY} {', '.join(loaded)} in {took:.1f} s, before the build", file=sys.stderr, flush=True)
    line = sys.stdin.readline()
    if not line.strip():
        log.unlink(missing_ok=True)
        return 0
    order = json.loads(line)
    build_log = Path(order["log"])
    sys.stderr.flush()
    with build_log.open("ab") as target:
        with contextlib.suppress(OSError):
            target.write(log.read_bytes())
        os.dup2(target.fileno(), 2)
    log.unlink(missing_ok=True)
    return builder(list(order["argv"]))
