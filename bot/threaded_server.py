"""An ASGI app served by uvicorn in a background thread: the bot, hubsim and the tests all start it this way.

Off the main thread uvicorn installs no signal handlers, so a process that serves in the foreground
(`quantbot serve`, `quantbot hubsim`) starts the thread and waits in `wait_for_stop_signal`: SIGINT and
SIGTERM only set a flag there (a KeyboardInterrupt raised inside `Thread.join` can leave the thread's lock
in a state that breaks the interpreter's shutdown), and the caller then stops what it runs in order.
`start` returns only once the socket accepts connections, so a URL printed after it is one that answers.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

import uvicorn

from bot.errors import ServerStartError

START_TIMEOUT_S = 15.0


class ThreadedServer:
    """`app` on `host:port` (port 0 picks a free one) in a daemon thread named `name`."""

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        name: str = "server",
        lifespan: Literal["auto", "on", "off"] = "auto",
        error: type[ServerStartError] = ServerStartError,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.name = name
        self.lifespan = lifespan
        self.error = error
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL a client on this machine uses (a wildcard host is reached on loopback)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> ThreadedServer:
        """Serve in a daemon thread; returns once the socket accepts connections (`port` is then bound)."""
        self._check_port()
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            log_level="warning",
            lifespan=self.lifespan,
            access_log=False,
        )
        server = self._server = uvicorn.Server(config)
        thread = self._thread = threading.Thread(target=server.run, name=self.name, daemon=True)
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise self.error(f"{self.name} did not start on {self.host}:{self.port}")
            time.sleep(0.02)
        self.port = server.servers[0].sockets[0].getsockname()[1]
        return self

    def _check_port(self) -> None:
        """Fail with one clear line (not uvicorn's log) when the address cannot be bound."""
        if self.port == 0:
            return
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
            with socket.socket(infos[0][0], socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(infos[0][4])
        except OSError as e:
            raise self.error(
                f"{self.name} cannot listen on {self.host}:{self.port}: {e.strerror or e}"
            ) from e

    def stop(self) -> None:
        """Stop taking connections, let uvicorn finish the requests in hand, and join the thread."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=START_TIMEOUT_S)
        self._server = self._thread = None

    def wait(self) -> int | None:
        """Block until SIGINT or SIGTERM (returned) or until the server's thread dies; the caller stops it."""
        return wait_for_stop_signal(lambda: self.running)

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for_stop_signal(alive: Callable[[], bool] = lambda: True) -> int | None:
    """Block the main thread until SIGINT or SIGTERM (or `alive()` turns false); restores the handlers.
    Returns the signal received (None: `alive()` turned false)."""
    stop = threading.Event()
    received: list[int] = []

    def heard(sig: int, _frame: object) -> None:
        received.append(sig)
        stop.set()

    previous = {sig: signal.signal(sig, heard) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.is_set() and alive():
            stop.wait(0.5)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return received[0] if received else None
