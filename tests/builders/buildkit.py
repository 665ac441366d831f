"""Running build workers from tests: specs with a small recipe, shared builds, killing a worker mid-stage.

Builds are real (ModelOpt / GPTQModel on CPU) and take seconds each, so every format is built once per
session and the tests read the result: int4_awq, fp8 and gptq through `quantbot build` (the command a
user runs, which starts `python -m builders run`), the other formats through `python -m builders run`
directly. Worker processes inherit the test environment: HF_ENDPOINT points at hubsim and the HF cache is
the session's temporary one, so a build downloads from hubsim into a cache shared by all builds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builders.portable import machine_names
from builders.spec import DEFAULT_CALIBRATION, BuildSpec, Manifest

# Small enough for 2 CPU cores, large enough that every calibration path (AWQ search, SmoothQuant) runs.
# The calibration set is the default one, which hubsim serves (bot/hubsim/datasets.py).
SMALL_RECIPE = {
    "calib_dataset": DEFAULT_CALIBRATION,
    "calib_samples": 8,
    "calib_seq_len": 64,
    "calib_batch_size": 4,
}
SMALL_VALIDATION = {"eval_tokens": 512, "eval_seq_len": 128, "generate_tokens": 4}
WORKER = [sys.executable, "-m", "builders", "run"]
CLI = [sys.executable, "-c", "from bot.cli import main; main()"]
CLI_FORMATS = ("int4_awq", "fp8", "gptq")
# What each shared build asks for beyond the small recipe: KV-cache variants, and an SM to be refused.
SHARED = {
    "fp8": {"target_sms": [90]},
    "int4_awq": {"target_sms": [90], "recipe": {"kv_cache": "fp8"}},
    "gptq": {"target_sms": [90]},
    "int8_sq": {"target_sms": [90], "recipe": {"kv_cache": "int8"}},
    "w4a8_awq": {"recipe": {"kv_cache": "fp8"}},
    "nvfp4": {},
}


@dataclass
class Upstream:
    repo_id: str
    sha: str
    model_dir: Path


@dataclass
class BuildResult:
    """One finished worker run: its exit code, its progress lines, and what it left behind."""

    spec: BuildSpec
    returncode: int
    progress: list[dict[str, Any]]
    stderr: str
    stdout: str = ""

    @property
    def manifest(self) -> Manifest:
        return Manifest.read(self.spec.manifest_path)

    @property
    def out(self) -> Path:
        return Path(self.spec.output_dir)

    @property
    def snapshot(self) -> Path:
        """The upstream snapshot the build read (its work dir's fetch record; the manifest omits paths)."""
        record = json.loads((Path(self.spec.work_dir) / "stages" / "fetch.json").read_text())
        return Path(record["details"]["snapshot_dir"])


@dataclass
class Builder:
    """Writes specs into a session folder and runs workers on them."""

    root: Path
    upstream: Upstream
    cache: dict[str, BuildResult] = field(default_factory=dict)

    def spec(self, name: str, fmt: str, *, local: Path | None = None, **fields: Any) -> BuildSpec:
        recipe = SMALL_RECIPE | fields.pop("recipe", {})
        validation = SMALL_VALIDATION | fields.pop("validation", {})
        source = (
            {"local_dir": local}
            if local
            else {"repo_id": self.upstream.repo_id, "revision": self.upstream.sha}
        )
        return BuildSpec(
            **source,
            format=fmt,
            recipe=recipe,
            validation=validation,
            work_dir=self.root / name / "work",
            output_dir=self.root / name / "out",
            disk_reserve_bytes=0,
            **fields,
        )

    def run(self, spec: BuildSpec, env: dict[str, str] | None = None, timeout: float = 300) -> BuildResult:
        path = spec.write(Path(spec.work_dir).parent / "spec.json")
        done = subprocess.run(
            [*WORKER, str(path)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=os.environ | (env or {}),
        )
        return BuildResult(spec, done.returncode, parse_progress(done.stdout), done.stderr)

    def cli(
        self, name: str, *args: str, env: dict[str, str] | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess:
        """``quantbot build ARGS --out --work`` in a subprocess (work and output under ``name``), started in
        a folder of its own (``name/cwd``), where a build must leave nothing."""
        where = ["--out", str(self.root / name / "out"), "--work", str(self.root / name / "work")]
        (self.root / name / "cwd").mkdir(parents=True, exist_ok=True)
        return subprocess.run(
            [*CLI, "build", *args, *where],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=os.environ | (env or {}),
            cwd=self.root / name / "cwd",
        )

    def built(self, fmt: str) -> BuildResult:
        """The session's build of ``fmt`` from the hubsim upstream (built on first use).

        The shared builds download into a cache of their own (HF_HUB_CACHE), so that together they
        show how many downloads N formats of one revision cost.
        """
        if fmt in self.cache:
            return self.cache[fmt]
        spec = self.spec(f"shared-{fmt}", fmt, **SHARED[fmt])
        env = {"HF_HUB_CACHE": str(self.root / "shared-cache")}
        if fmt not in CLI_FORMATS:
            self.cache[fmt] = self.run(spec, env)
            return self.cache[fmt]
        r = spec.recipe
        done = self.cli(
            f"shared-{fmt}", self.upstream.repo_id, "--format", fmt, "--kv-cache", r.kv_cache,
            "--calib", r.calib_dataset, "--calib-samples", str(r.calib_samples),
            "--calib-seq-len", str(r.calib_seq_len), "--calib-batch-size", str(r.calib_batch_size),
            *[arg for sm in spec.target_sms for arg in ("--sm", str(sm))], env=env,
        )  # fmt: skip
        written = BuildSpec.read(Path(spec.work_dir) / "spec.json")
        self.cache[fmt] = BuildResult(written, done.returncode, [], done.stderr, done.stdout)
        return self.cache[fmt]


def parse_progress(stdout: str) -> list[dict[str, Any]]:
    """Every stdout line of a worker must be one JSON progress object."""
    lines = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    for line in lines:
        assert set(line) >= {"stage", "fraction", "message"}, line
        assert 0.0 <= line["fraction"] <= 1.0
    return lines


def start_worker(spec: BuildSpec, env: dict[str, str]) -> subprocess.Popen:
    path = spec.write(Path(spec.work_dir).parent / "spec.json")
    return subprocess.Popen(
        [*WORKER, str(path)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=os.environ | env, start_new_session=True,
    )  # fmt: skip


def kill_when(proc: subprocess.Popen, predicate: Any, timeout: float = 240) -> list[dict[str, Any]]:
    """Read progress until ``predicate(line)``; then SIGKILL the worker, as a crash would end it."""
    seen = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    for raw in proc.stdout:
        line = json.loads(raw)
        seen.append(line)
        if predicate(line):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
            return seen
        assert time.monotonic() < deadline, "worker never reached the point to kill it at"
    raise AssertionError(f"worker ended (rc {proc.wait()}) before the kill point; last lines {seen[-3:]}")


def host_leaks(out: Path, spec: BuildSpec) -> list[str]:
    """``file: needle`` for every file under ``out`` that names this machine: its build folders, the HF
    cache, the home folder, the temp dir (anywhere in a text), the user or the host name (as a word).

    Of a safetensors file only the header is text; its tensor data is numbers, not names."""
    import re
    import tempfile

    from builders.portable import host_roots

    paths = {root for root, _ in host_roots(spec)} | {tempfile.gettempdir(), str(Path(spec.work_dir).parent)}
    names = [re.compile(rf"(?<![A-Za-z0-9]){re.escape(n)}(?![A-Za-z0-9])") for n in machine_names()]
    found = []
    for file in sorted(p for p in out.rglob("*") if p.is_file()):
        data = file.read_bytes()
        if file.suffix == ".safetensors":
            data = data[8 : 8 + int.from_bytes(data[:8], "little")]
        text = data.decode("utf-8", errors="replace")
        found += [f"{file.relative_to(out)}: {p}" for p in sorted(paths) if p in text]
        found += [f"{file.relative_to(out)}: {n.pattern}" for n in names if n.search(text)]
    return found
