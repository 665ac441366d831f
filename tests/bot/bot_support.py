"""Helpers of the tests that run a whole bot in-process: a free port, and waiting for what it does."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def until(probe: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """What `probe` returns once it is truthy (polled every 0.1 s); fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (found := probe()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return found
