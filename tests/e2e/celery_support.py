"""Real parts for the Celery tests: a private Redis server, a fresh PostgreSQL database, `quantbot worker`s.

The Redis server is the test's own (`redis-server --port <free> --save ''`) so a test can stop it and start
it again without touching the machine's shared Redis; PostgreSQL is the machine's, in a database made for
the test and dropped after it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from e2e_support import QUANTBOT, E2EHub, free_port, toml_lines, wait_for

PG_ADMIN = os.environ.get("QUANTBOT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass
class RedisServer:
    """A redis-server of the test's own, without persistence: stopping it loses what it held, as a crash."""

    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        log = (self.root / "redis.log").open("ab")
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.root,
        )  # fmt: skip
        wait_for(self._answers, 10, f"redis-server on port {self.port}")
        return self

    def _answers(self) -> bool:
        done = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True)
        return done.stdout.strip() == "PONG"

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
            self.process = None


def fresh_postgres() -> tuple[str, object] | None:
    """A new, empty database's URL and the admin connection that drops it; None without PostgreSQL."""
    try:
        import psycopg

        admin = psycopg.connect(PG_ADMIN, connect_timeout=2, autocommit=True)
    except Exception:
        return None
    name = f"qb_celery_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rpartition("/")[0]
    return f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}", admin


def drop_postgres(url: str, admin: object) -> None:
    name = url.rpartition("/")[2]
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[attr-defined]
    admin.close()  # type: ignore[attr-defined]


@dataclass
class WorkerProcess:
    """`quantbot worker --sm N` on the CPU, with a config of its own: broker, Hub and data dir only."""

    root: Path
    hub: E2EHub
    broker_url: str
    sm: int
    env_extra: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "worker.log"

    @property
    def name_prefix(self) -> str:
        """The start of its Celery node name (`sm90-cpu-<pid>@host`)."""
        assert self.process is not None
        return f"sm{self.sm}-cpu-{self.process.pid}@"

    def start(self) -> WorkerProcess:
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "worker.toml"
        config.write_text(
            toml_lines(
                {
                    "data_dir": str(self.data_dir),
                    "hf_endpoint": self.hub.url,
                    "hf_token": self.hub.tokens["quantbot"],
                    "broker_url": self.broker_url,
                }
            )
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("QUANTBOT_", "HF_TOKEN"))}
        env |= {"HF_ENDPOINT": self.hub.url, "HF_HOME": str(self.root / "hf"), "QUANTBOT_LOG_LEVEL": "INFO"}
        self.process = subprocess.Popen(
            [QUANTBOT, "--config", str(config), "worker", "--sm", str(self.sm)],
            stdout=self.log_path.open("ab"), stderr=subprocess.STDOUT, env=env | self.env_extra,
        )  # fmt: skip
        wait_for(self._ready, 60, f"the sm{self.sm} worker to be ready")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"quantbot worker exited {self.process.returncode}:\n{self.log()[-3000:]}")
        return f"{self.name_prefix}" in self.log() and " ready." in self.log()

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
            self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def builds_running(folder: Path) -> list[int]:
    """Pids of build processes (`-m builders`) working in `folder` (a worker's data dir)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
            zombie = "\nState:\tZ" in (proc / "status").read_text()
        except OSError:
            continue
        if zombie:
            continue
        if "builders" in cmdline and any(str(folder) in part for part in cmdline):
            found.append(int(proc.name))
    return found
