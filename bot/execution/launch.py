"""How the bot starts a build worker, shared by `quantbot build` and the executor.

One place decides the command (`worker_command`, default this interpreter), where the spec file goes, and
the environment the worker gets (the Hub endpoint and token from settings, unbuffered output), so a worker
started by hand and one started by the bot behave the same.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bot.settings import Settings
from builders.spec import BuildSpec


def write_spec(spec: BuildSpec) -> Path:
    """Write the spec into its work dir, where the worker and a resumed run find it."""
    work = Path(spec.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    return spec.write(work / "spec.json")


def worker_argv(settings: Settings, spec_path: Path) -> list[str]:
    """`python -m builders run SPEC.json` with the configured worker interpreter or container command."""
    return [*(settings.worker_command or [sys.executable]), "-m", "builders", "run", str(spec_path)]


def worker_env(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The bot's environment plus the Hub settings the worker needs to fetch the upstream model."""
    env = os.environ | {"PYTHONUNBUFFERED": "1", "HF_ENDPOINT": settings.hf_endpoint}
    if settings.token():
        env["HF_TOKEN"] = settings.token() or ""
    return env | (extra or {})
