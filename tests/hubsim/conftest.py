"""Fixtures for hubsim's own tests: a real HTTP webhook receiver, and a small model folder to upload."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

# created once per session: the Hub refuses a base_model that does not exist
BASE_MODEL = "hubsim-org/tiny-llama"
README = f"""---
license: apache-2.0
base_model: {BASE_MODEL}
base_model_relation: quantized
tags:
- fp8
---
# tiny model
"""
CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 16}


@dataclass
class Received:
    """One POST the receiver got."""

    headers: dict[str, str]
    payload: dict[str, Any]


@dataclass
class Receiver:
    """An HTTP endpoint that records what hubsim delivers."""

    url: str
    received: list[Received] = field(default_factory=list)
    status: int = 200

    def wait(self, predicate: Any, timeout: float = 10.0) -> Received:
        """The first received delivery whose payload matches `predicate`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for item in list(self.received):
                if predicate(item.payload):
                    return item
            time.sleep(0.02)
        raise TimeoutError(f"no matching webhook among {[r.payload['event'] for r in self.received]}")


@pytest.fixture
def webhook_receiver() -> Iterator[Receiver]:
    receiver = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            receiver.received.append(Received(dict(self.headers), json.loads(body)))
            self.send_response(receiver.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/webhook"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def base_model(hubsim: Any) -> str:
    """The upstream repo the test cards name as `base_model`."""
    hubsim.api.create_repo(BASE_MODEL, exist_ok=True)
    return BASE_MODEL


@pytest.fixture
def model_folder(tmp_path: Path, base_model: str) -> Path:
    """README with metadata, config.json, a nested file and a binary file (LFS, by `.gitattributes`)."""
    folder = tmp_path / "model"
    (folder / "nested").mkdir(parents=True)
    (folder / "README.md").write_text(README)
    (folder / "config.json").write_text(json.dumps(CONFIG))
    (folder / "nested" / "notes.txt").write_text("line one\nline two\n")
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 8)
    return folder
