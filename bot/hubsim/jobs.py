"""Hugging Face Jobs on hubsim: a Job's command runs as a local process, reported as the Hub reports it.

What huggingface_hub's `run_job`, `inspect_job`, `fetch_job_logs`, `cancel_job`, `list_jobs` and
`list_jobs_hardware` send and read (hf_api.py, _jobs_api.py). No container: the image is recorded, not
pulled, and the command runs with hubsim's own interpreter first on `PATH`, in a fresh folder that is its
`HOME` (an empty Hub cache, as in a new container), with the Job's environment and secrets and nothing of
hubsim's environment but `PATH`, `PYTHONPATH` and the locale. `HF_ENDPOINT` is this hub (in a real Job the
default endpoint is the Hub itself). `machine_env` (set with hubsim's admin route) is what the Job's machine
adds, as a container image's `ENV` would: tests put the builders' hold and fault switches there, to hold a
Job mid-build or make it fail, as the Job asked nothing.

Stages as the Hub names them: `SCHEDULING` until the process starts, `RUNNING`, then `COMPLETED` (exit 0),
`ERROR` (another exit code, or the timeout: "Job timeout after N s"; the Hub's default timeout is 30 min),
`CANCELED` (`cancel_job`) or `DELETED` (hubsim's admin route, standing for a Job the Hub lost). Logs are
the process's stdout and stderr, line by line, after the Hub's "===== Job started at … =====" line, and
stream as server-sent events until the Job ends. Jobs are not persisted: a restarted hubsim has none.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.hubsim.errors import ApiError, bad_request, forbidden
from bot.hubsim.users import Directory, User

DEFAULT_TIMEOUT_S = 30 * 60
TERMINAL = ("COMPLETED", "ERROR", "CANCELED", "DELETED")
STOP_GRACE_S = 5.0
KEEP_ALIVE_S = 15.0
_PASSED_ON = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "TZ")

# The Hub's `GET /api/jobs/hardware` answer for its GPU and CPU flavours (docs/hub/jobs-pricing.md):
# name, pretty name, vCPUs, RAM GB, storage GB, (GPU model, count, GPU memory GB) or None, USD per hour.
_HARDWARE: list[tuple[str, str, int, int, int, tuple[str, int, int] | None, float]] = [
    ("cpu-basic", "CPU Basic", 2, 16, 50, None, 0.01),
    ("cpu-upgrade", "CPU Upgrade", 8, 32, 50, None, 0.03),
    ("cpu-xl", "CPU XL", 16, 124, 1000, None, 1.00),
    ("cpu-performance", "CPU Performance", 32, 256, 1024, None, 1.90),
    ("t4-small", "Nvidia T4 - small", 4, 15, 50, ("T4", 1, 16), 0.40),
    ("t4-medium", "Nvidia T4 - medium", 8, 30, 100, ("T4", 1, 16), 0.60),
    ("l4x1", "1x Nvidia L4", 8, 30, 400, ("L4", 1, 24), 0.80),
    ("l4x4", "4x Nvidia L4", 48, 186, 3200, ("L4", 4, 96), 3.80),
    ("l40sx1", "1x Nvidia L40S", 8, 62, 380, ("L40S", 1, 48), 1.80),
    ("l40sx4", "4x Nvidia L40S", 48, 382, 3200, ("L40S", 4, 192), 8.30),
    ("l40sx8", "8x Nvidia L40S", 192, 1534, 6500, ("L40S", 8, 384), 23.50),
    ("a10g-small", "Nvidia A10G - small", 4, 15, 110, ("A10G", 1, 24), 1.00),
    ("a10g-large", "Nvidia A10G - large", 12, 46, 200, ("A10G", 1, 24), 1.50),
    ("a10g-largex2", "2x Nvidia A10G - large", 24, 92, 1000, ("A10G", 2, 48), 3.00),
    ("a10g-largex4", "4x Nvidia A10G - large", 48, 184, 2000, ("A10G", 4, 96), 5.00),
    ("a100-large", "Nvidia A100 - large", 12, 142, 1000, ("A100", 1, 80), 2.50),
    ("a100x4", "4x Nvidia A100 - large", 48, 568, 4000, ("A100", 4, 320), 10.00),
    ("a100x8", "8x Nvidia A100 - large", 96, 1136, 8000, ("A100", 8, 640), 20.00),
    ("h200", "Nvidia H200", 23, 256, 3000, ("H200", 1, 141), 5.00),
    ("h200x2", "2x Nvidia H200", 46, 512, 6000, ("H200", 2, 282), 10.00),
    ("h200x4", "4x Nvidia H200", 92, 1024, 12000, ("H200", 4, 564), 20.00),
    ("h200x8", "8x Nvidia H200", 184, 2048, 24000, ("H200", 8, 1128), 40.00),
    ("rtx-pro-6000", "Nvidia RTX PRO 6000", 23, 256, 475, ("RTX PRO 6000", 1, 96), 2.75),
    ("rtx-pro-6000x2", "2x Nvidia RTX PRO 6000", 46, 512, 950, ("RTX PRO 6000", 2, 192), 5.50),
    ("rtx-pro-6000x4", "4x Nvidia RTX PRO 6000", 92, 1024, 1900, ("RTX PRO 6000", 4, 384), 11.00),
    ("rtx-pro-6000x8", "8x Nvidia RTX PRO 6000", 184, 2048, 3800, ("RTX PRO 6000", 8, 768), 22.00),
]


def hardware_json() -> list[dict[str, Any]]:
    """The flavours as `GET /api/jobs/hardware` lists them (prices per minute, in micro-USD and USD)."""
    answer = []
    for name, pretty, cpu, ram, storage, gpu, hourly in _HARDWARE:
        micro = round(hourly / 60 * 1e6)
        entry: dict[str, Any] = {
            "name": name,
            "prettyName": pretty,
            "cpu": f"{cpu} vCPU",
            "ram": f"{ram} GB",
            "ephemeralStorage": f"{storage} GB",
            "unitCostMicroUSD": micro,
            "unitCostUSD": micro / 1e6,
            "unitLabel": "minute",
        }
        if gpu is not None:
            model, count, vram = gpu
            entry["accelerator"] = {
                "type": "gpu",
                "model": model,
                "quantity": str(count),
                "vram": f"{vram} GB",
                "manufacturer": "Nvidia",
            }
        answer.append(entry)
    return answer


FLAVORS = frozenset(h[0] for h in _HARDWARE)


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z") if moment else None


@dataclass
class Job:
    """One Job: what was asked (`spec`, as posted), who asked, and what its process did."""

    id: str
    namespace: str
    owner: dict[str, str]
    spec: dict[str, Any]
    folder: Path
    created_at: datetime = field(default_factory=_now)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    stage: str = "SCHEDULING"
    message: str | None = None
    process: subprocess.Popen[bytes] | None = None
    logs: list[tuple[datetime, str]] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    @property
    def finished(self) -> bool:
        return self.stage in TERMINAL

    @property
    def flavor(self) -> str:
        return str(self.spec["flavor"])

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.spec.get("labels") or {})

    def api_json(self) -> dict[str, Any]:
        """The Job as `GET /api/jobs/{namespace}/{id}` answers it (secret values never shown)."""
        now = _now()
        started, finished = self.started_at, self.finished_at
        spec = self.spec
        answer = {
            "id": self.id,
            "createdAt": _iso(self.created_at),
            "startedAt": _iso(started),
            "finishedAt": _iso(finished),
            "command": spec["command"],
            "arguments": spec.get("arguments") or [],
            "environment": spec.get("environment") or {},
            "secrets": dict.fromkeys(spec.get("secrets") or {}),
            "flavor": spec["flavor"],
            "labels": spec.get("labels") or None,
            "timeoutSeconds": spec.get("timeoutSeconds", DEFAULT_TIMEOUT_S),
            "status": {"stage": self.stage, "message": self.message},
            "durations": {
                "schedulingSecs": int(((started or now) - self.created_at).total_seconds()),
                "runningSecs": int(((finished or now) - started).total_seconds()) if started else None,
                "totalSecs": int(((finished or now) - self.created_at).total_seconds()),
            },
            "owner": self.owner,
            "initiator": {"type": "user", "id": self.owner["id"], "name": self.owner["name"]},
        }
        answer["spaceId" if "spaceId" in spec else "dockerImage"] = spec.get("spaceId") or spec.get(
            "dockerImage"
        )
        return answer


class Jobs:
    """Every Job hubsim ran since it started; each runs in a process of its own, watched by a thread."""

    def __init__(self, users: Directory, endpoint: str) -> None:
        self.users = users
        self.endpoint = endpoint
        self.jobs: dict[str, Job] = {}
        self.machine_env: dict[str, str] = {}  # what every Job started from now on finds in its environment
        self._root = Path(tempfile.mkdtemp(prefix="hubsim-jobs-"))

    # -------------------------------------------------------------------------------------- requests

    def run(self, user: User, namespace: str, body: dict[str, Any]) -> Job:
        """`POST /api/jobs/{namespace}`: check the spec as the Hub does, then start the command."""
        self._may_run(user, namespace)
        spec = _checked(body)
        job_id = secrets.token_hex(12)
        folder = self._root / job_id
        folder.mkdir()
        owner_type = "org" if namespace in self.users.orgs else "user"
        owner = {"id": self.users.owner_id(namespace), "name": namespace, "type": owner_type}
        job = Job(job_id, namespace, owner, spec, folder)
        self.jobs[job_id] = job
        threading.Thread(
            target=self._supervise, args=(job,), name=f"hubsim-job-{job_id}", daemon=True
        ).start()
        return job

    def get(self, user: User, namespace: str, job_id: str) -> Job:
        """A Job of `namespace` the caller may see (404 otherwise, as the Hub answers)."""
        self._may_run(user, namespace)
        job = self.jobs.get(job_id)
        if job is None or job.namespace != namespace:
            raise ApiError(404, f"Job {job_id} not found")
        return job

    def listed(self, user: User, namespace: str, stages: list[str], labels: list[str]) -> list[Job]:
        """`GET /api/jobs/{namespace}?stage=…&label=k=v`: the namespace's Jobs, newest first."""
        self._may_run(user, namespace)
        wanted = dict(label.partition("=")[::2] for label in labels)
        return [
            job
            for job in sorted(self.jobs.values(), key=lambda j: j.created_at, reverse=True)
            if job.namespace == namespace
            and (not stages or job.stage in stages)
            and all(job.labels.get(k) == v for k, v in wanted.items())
        ]

    def cancel(self, job: Job) -> None:
        """`POST …/cancel`: stop the process; a Job that already ended keeps its stage."""
        self._end(job, "CANCELED", "Job canceled by user")

    def delete(self, job: Job) -> None:
        """hubsim's admin route: the Hub lost the Job (its machine is gone); the process dies with it."""
        self._end(job, "DELETED", "Job deleted")

    def close(self) -> None:
        """Stop every Job still running and remove their folders (hubsim is shutting down)."""
        for job in list(self.jobs.values()):
            self._end(job, "DELETED", "hubsim stopped")
        shutil.rmtree(self._root, ignore_errors=True)

    def events(self, job: Job, tail: int | None) -> Iterator[bytes]:
        """The Job's log lines as server-sent events, following them until the Job ends."""
        with job.changed:
            start = 0 if tail is None else max(0, len(job.logs) - tail)
        sent, quiet_since = start, time.monotonic()
        while True:
            with job.changed:
                fresh = job.logs[sent:]
                done = job.finished
                if not fresh and not done:
                    job.changed.wait(1.0)
                    fresh, done = job.logs[sent:], job.finished
            for moment, line in fresh:
                yield f"data: {json.dumps({'data': line, 'timestamp': _iso(moment)})}\n\n".encode()
            sent += len(fresh)
            if fresh:
                quiet_since = time.monotonic()
            elif done:
                return
            elif time.monotonic() - quiet_since > KEEP_ALIVE_S:
                quiet_since = time.monotonic()
                yield b": keep-alive\n\n"

    # ------------------------------------------------------------------------------------- processes

    def _may_run(self, user: User, namespace: str) -> None:
        if namespace != user.name and user.name not in getattr(self.users.orgs.get(namespace), "members", ()):
            raise forbidden(f"You cannot run or see Jobs in the namespace {namespace}")

    def _environment(self, job: Job) -> dict[str, str]:
        env = {name: os.environ[name] for name in _PASSED_ON if name in os.environ}
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "/usr/bin:/bin")])
        env |= self.machine_env
        env |= {"HOME": str(job.folder), "HF_ENDPOINT": self.endpoint}
        env |= {k: str(v) for k, v in (job.spec.get("environment") or {}).items()}
        return env | {k: str(v) for k, v in (job.spec.get("secrets") or {}).items()}

    def _supervise(self, job: Job) -> None:
        """Start the command, collect its output line by line, and set the stage it ends in."""
        argv = [*job.spec["command"], *(job.spec.get("arguments") or [])]
        with job.changed:
            if job.finished:
                return
            try:
                job.process = subprocess.Popen(
                    argv,
                    cwd=job.folder,
                    env=self._environment(job),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            except OSError as e:
                self._finish(job, "ERROR", f"Could not start the command: {e.strerror or e}")
                return
            job.started_at = _now()
            job.stage = "RUNNING"
            job.logs.append((job.started_at, f"===== Job started at {_iso(job.started_at)} ====="))
            job.changed.notify_all()
        timeout = float(job.spec.get("timeoutSeconds") or DEFAULT_TIMEOUT_S)
        timer = threading.Timer(timeout, self._end, (job, "ERROR", f"Job timeout after {timeout:.0f} s"))
        timer.daemon = True
        timer.start()
        assert job.process.stdout is not None
        for raw in job.process.stdout:
            with job.changed:
                job.logs.append((_now(), raw.decode("utf-8", "replace").rstrip("\r\n")))
                job.changed.notify_all()
        code = job.process.wait()
        timer.cancel()
        with job.changed:
            if not job.finished:
                stage = "COMPLETED" if code == 0 else "ERROR"
                self._finish(job, stage, None if code == 0 else f"Job failed with exit code: {code}")

    def _end(self, job: Job, stage: str, message: str) -> None:
        """Stop a Job from outside (cancel, delete, timeout): its process group is terminated, then killed."""
        with job.changed:
            if job.finished:
                return
            self._finish(job, stage, message)
            process = job.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)

    @staticmethod
    def _finish(job: Job, stage: str, message: str | None) -> None:
        job.stage, job.message, job.finished_at = stage, message, _now()
        job.changed.notify_all()


def _checked(body: dict[str, Any]) -> dict[str, Any]:
    """The job spec `_create_job_spec` sends, checked field by field (400 with the field named)."""
    command = body.get("command")
    if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
        raise bad_request("command must be a non-empty list of strings")
    if not isinstance(body.get("arguments", []), list):
        raise bad_request("arguments must be a list of strings")
    image = body.get("dockerImage") or body.get("spaceId")
    if not isinstance(image, str) or not image:
        raise bad_request("dockerImage or spaceId is required")
    flavor = body.get("flavor", "cpu-basic")
    if flavor not in FLAVORS:
        raise bad_request(f"Invalid flavor {flavor!r}: expected one of {', '.join(sorted(FLAVORS))}")
    for name in ("environment", "secrets", "labels"):
        value = body.get(name) or {}
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise bad_request(f"{name} must be an object of strings")
    timeout = body.get("timeoutSeconds", DEFAULT_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout <= 0:
        raise bad_request("timeoutSeconds must be a positive integer")
    return dict(body) | {"flavor": flavor}
