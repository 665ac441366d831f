"""Side environments: one small virtualenv per transformers line a runtime runs on (runtimes.yaml), made once
under a folder the bot names (its data dir) and reused, in which a release is read as that runtime's
transformers reads it (builders/readback.py, run as a script there).

Reading a config and a tokenizer needs no torch: each environment holds transformers of that line (the newest
patch release: `4.57` installs 4.57.x), its own dependencies (tokenizers, huggingface_hub) and jinja2 for chat
templates, from PyPI with pip. Making one takes tens of seconds once; a lock file lets concurrent
verifications wait for one another instead of building it twice, and a marker written last tells a finished
environment from one a killed run left half-made (which is made again).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MARKER = "quantbot-env.json"
EXTRAS = ("jinja2",)  # chat templates; transformers brings tokenizers and huggingface_hub itself
PIP_TIMEOUT_S = 900
READ_TIMEOUT_S = 300
_READER = Path(__file__).with_name("readback.py")


class EnvUnavailable(Exception):
    """The environment of a transformers line could not be made (no network, no such version, pip failed)."""


@dataclass(frozen=True)
class SideEnv:
    line: str
    python: Path
    transformers: str  # the exact version installed, e.g. 4.57.6

    def read(self, upstream: Path, release: Path, trust_remote_code: bool = False) -> dict[str, Any]:
        """Both readings under this environment's transformers (`readback.main`'s JSON)."""
        argv = [str(self.python), "-I", str(_READER), str(upstream), str(release)]
        argv += ["--trust-remote-code"] if trust_remote_code else []
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=READ_TIMEOUT_S, env=_quiet_env(), check=False
        )
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
            raise EnvUnavailable(f"the reader failed under transformers {self.transformers}: {last}")
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def ensure(root: Path, line: str) -> SideEnv:
    """The environment of transformers `line` under `root`, made now if it is not there yet."""
    folder = Path(root) / f"transformers-{line}"
    ready = _ready(folder, line)
    if ready is not None:
        return ready
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".transformers-{line}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another verification may be making it: wait, then use it
        ready = _ready(folder, line)
        if ready is not None:
            return ready
        shutil.rmtree(folder, ignore_errors=True)  # half-made by a run that was killed
        return _make(folder, line)


def _ready(folder: Path, line: str) -> SideEnv | None:
    python = folder / "bin" / "python"
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return SideEnv(line, python, str(marker["transformers"])) if python.exists() else None


def _make(folder: Path, line: str) -> SideEnv:
    python = folder / "bin" / "python"
    steps = [
        [sys.executable, "-m", "venv", str(folder)],
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-input",
            "--no-compile",
            f"transformers~={line}.0",
            *EXTRAS,
        ],  # byte-compiling all of transformers is slow
    ]
    for argv in steps:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired as e:
            raise EnvUnavailable(
                f"making the transformers {line} environment ran past {PIP_TIMEOUT_S} s"
            ) from e
        if done.returncode != 0:
            lines = [x for x in done.stderr.strip().splitlines() if x.strip()]
            errors = (
                [x for x in lines if x.startswith("ERROR")] or lines or [f"exit status {done.returncode}"]
            )
            raise EnvUnavailable(f"pip could not install transformers {line}: {errors[-1].strip()}"[:300])
    version = subprocess.run(
        [str(python), "-I", "-c", "from importlib.metadata import version; print(version('transformers'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (folder / MARKER).write_text(json.dumps({"line": line, "transformers": version}) + "\n", encoding="utf-8")
    return SideEnv(line, python, version)


def _quiet_env() -> dict[str, str]:
    """The reader's environment: offline (it reads local folders), no warnings on its output, nothing of the
    worker's Python path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return env | {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_VERBOSITY": "error",
        "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
