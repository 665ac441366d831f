"""The one way quantbot runs uvicorn: in a thread, started only once it answers, stopped cleanly."""

from __future__ import annotations

import os
import signal
import socket
import threading

import httpx
import pytest

from bot.errors import HubsimStartError, ServerStartError
from bot.threaded_server import ThreadedServer, wait_for_stop_signal


async def hello(scope, receive, send) -> None:  # a minimal ASGI app
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello"})


def test_start_returns_once_the_port_answers_and_stop_closes_it() -> None:
    server = ThreadedServer(hello, lifespan="off", name="hello").start()
    try:
        assert server.port != 0 and server.running
        assert httpx.get(server.url).text == "hello"
    finally:
        server.stop()
    assert not server.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url, timeout=2)
    assert not any(t.name == "hello" for t in threading.enumerate())


def test_a_port_in_use_is_one_clear_error_of_the_callers_kind() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(HubsimStartError, match=rf"^hubsim cannot listen on 127\.0\.0\.1:{port}: "):
            ThreadedServer(hello, port=port, name="hubsim", error=HubsimStartError).start()
        with pytest.raises(ServerStartError, match="quantbot-server cannot listen"):
            ThreadedServer(hello, port=port, name="quantbot-server").start()


def test_a_wildcard_host_is_reached_on_loopback() -> None:
    assert ThreadedServer(hello, "0.0.0.0", 8123).url == "http://127.0.0.1:8123"


def test_wait_returns_on_sigterm_and_restores_the_handlers() -> None:
    before = signal.getsignal(signal.SIGTERM)
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    wait_for_stop_signal()
    timer.join()
    assert signal.getsignal(signal.SIGTERM) is before


def test_wait_returns_when_the_server_thread_is_gone() -> None:
    server = ThreadedServer(hello, lifespan="off").start()
    threading.Timer(0.2, server.stop).start()
    server.wait()  # returns because the thread ended, not by a signal
    assert not server.running
