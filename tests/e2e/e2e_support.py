"""Helpers of the end-to-end tests: the hub's users, the bot as a subprocess, waiting (see conftest.py)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from huggingface_hub import HfApi

from bot.hubsim import HubsimServer
from state import Store, open_store, sqlite_url

T = TypeVar("T")

QUANTBOT = str(Path(sys.executable).with_name("quantbot"))
USERS = ("alice", "quantbot", "maya", "mallory")
RELEASES_ORG = "qb-releases"
SECRET = "e2e-" + uuid.uuid4().hex


def wait_for(probe: Callable[[], T | None], timeout: float, what: str, every: float = 0.2) -> T:
    """The first non-None (and non-False) value of `probe`, polled until `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class E2EHub:
    """The running hub and a client per user."""

    server: HubsimServer
    tokens: dict[str, str]

    @property
    def url(self) -> str:
        return self.server.url

    def api(self, user: str) -> HfApi:
        return HfApi(endpoint=self.url, token=self.tokens[user])


@dataclass
class BotProcess:
    """`quantbot serve` in a subprocess, plus the CLI and the database it uses."""

    root: Path
    hub: E2EHub
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    database_url: str | None = None  # default: SQLite in the data dir

    @property
    def config(self) -> Path:
        return self.root / "quantbot.toml"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("QUANTBOT_", "HF_TOKEN"))}
        return env | {
            "HF_ENDPOINT": self.hub.url,
            "HF_HOME": str(self.root / "hf"),
            "QUANTBOT_LOG_LEVEL": "INFO",
        }

    def write_config(self, **extra: Any) -> None:
        from builders.tiny import calibration_text_path

        values: dict[str, Any] = (
            {
                "data_dir": str(self.root / "data"),
                "hf_endpoint": self.hub.url,
                "hf_token": self.hub.tokens["quantbot"],
                "webhook_secret": SECRET,
                "namespace": RELEASES_ORG,
                "approval": "approval",
                "maintainers": ["maya"],
                "command_namespaces": ["alice"],
                # The e2e modules share one hubsim and its users: a restarted bot's catch-up rightly answers
                # commands other modules posted, which must not use up maya's rate (tests/handlers test it).
                "command_rate_limit": 1000,
                "lease_s": 6,
                "shutdown_grace_s": 10,  # a SIGTERM mid-stage stops the build within `stop`'s wait
                # the runtimes' transformers lines are read in tests/publishing; here releases say not checked
                "runtime_envs": False,
                # the lifecycle modules count jobs as the seed matrices give them for the tiny Llama (the
                # runtimes policy adds nvfp4 on sm89/sm90, which needs CUDA to calibrate)
                "policy": "strict",
                "build_recipe": {
                    "calib_dataset": str(calibration_text_path()),
                    "calib_samples": 32,
                    "calib_seq_len": 128,
                },
                "build_validation": {"eval_tokens": 512, "eval_seq_len": 128},
            }
            | ({"database_url": self.database_url} if self.database_url else {})
            | extra
        )
        self.config.write_text(toml_lines(values))

    def start(self) -> BotProcess:
        log = (self.root / "serve.log").open("ab")
        self.process = subprocess.Popen(
            [QUANTBOT, "--config", str(self.config), "serve", "--port", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        wait_for(self._healthy, 30, "the bot to answer /healthz")
        return self

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                f"quantbot serve exited with {self.process.returncode}:\n{self.log()[-3000:]}"
            )
        try:
            return httpx.get(self.url + "/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        code = self.process.wait(timeout)
        self.process = None
        return code

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [QUANTBOT, "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done

    def store(self) -> Store:
        return open_store(self.database_url or sqlite_url(self.root / "data"), upgrade=False)

    def post(self, body: bytes, secret: str | None = SECRET, **headers: str) -> httpx.Response:
        if secret is not None:
            headers["X-Webhook-Secret"] = secret
        return httpx.post(self.url + "/webhooks/hub", content=body, headers=headers, timeout=10)

    def log(self) -> str:
        return (self.root / "serve.log").read_text(errors="replace")


def toml_lines(values: dict[str, Any]) -> str:
    """A flat TOML file's text: strings, numbers, lists and inline tables."""
    return (
        "\n".join(
            f"{k} = {json.dumps(v) if not isinstance(v, dict) else _table(v)}" for k, v in values.items()
        )
        + "\n"
    )


def _table(values: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in values.items()) + "}"


def publish_upstream(hub: E2EHub, model: Path, name: str, **card: Any) -> tuple[str, str]:
    """alice publishes the tiny model as `alice/<name>-<random>`; returns the repo id and its sha."""
    from builders.tiny import push_upstream

    repo_id = f"alice/{name}-{uuid.uuid4().hex[:6]}"
    sha = push_upstream(model, repo_id, endpoint=hub.url, token=hub.tokens["alice"], card_data=card or None)
    return repo_id, sha


def push_revision(hub: E2EHub, repo_id: str, text: str) -> str:
    """alice commits a small change to `main`; returns the new sha."""
    info = hub.api("alice").upload_file(
        path_or_fileobj=text.encode(), path_in_repo="NOTES.md", repo_id=repo_id, commit_message=text[:60]
    )
    return info.oid
