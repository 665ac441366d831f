"""Serving hubsim on a port: uvicorn's `Server` in a background thread, for the tests, the demo and the CLI.

Off the main thread uvicorn installs no signal handlers; `stop()` sets `should_exit` and joins (like
httpx's own test server). The CLI starts the thread too and waits in `serve_forever`, so its banner is
printed only once the port really accepts connections, and Ctrl+C / SIGTERM stop it cleanly.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from pathlib import Path

import uvicorn

from bot.errors import HubsimStartError
from bot.hubsim.app import HubsimApp
from bot.hubsim.persistence import DataDir
from bot.hubsim.service import HubService
from bot.hubsim.users import DEFAULT_USER, Directory, User

START_TIMEOUT_S = 15.0


def create_hub(
    data_dir: Path | None = None,
    users_file: Path | None = None,
    user: str | None = None,
    token: str | None = None,
) -> HubService:
    """A hub from CLI options: a users file, or one user (`user`, `token`), else the saved or default one.

    `--user NAME` without `--token` keeps the token NAME had in the data directory, if any."""
    if users_file is not None:
        return HubService(Directory.load(users_file), data_dir)
    if user is None and token is None:
        return HubService(None, data_dir)
    name = user or DEFAULT_USER
    if token is None and data_dir is not None and (meta := DataDir(data_dir).load_meta()):
        saved = Directory.from_dict(meta["directory"]).users.get(name)
        token = saved.token if saved else None
    return HubService(Directory.single(name, token), data_dir)


class HubsimServer:
    """One hub served on `host:port` (port 0 picks a free one)."""

    def __init__(self, hub: HubService, host: str = "127.0.0.1", port: int = 0) -> None:
        self.hub = hub
        self.host = host
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The endpoint to give the client (`HF_ENDPOINT`)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def default_user(self) -> User:
        """The first configured user (the one `quantbot hubsim` suggests in its `export` line)."""
        return next(iter(self.hub.users.users.values()))

    def start(self) -> HubsimServer:
        """Serve in a daemon thread; returns once the socket accepts connections."""
        self._check_port()
        config = uvicorn.Config(
            HubsimApp(self.hub),
            host=self.host,
            port=self.port,
            log_level="warning",
            lifespan="off",
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="hubsim", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise HubsimStartError(f"hubsim did not start on {self.host}:{self.port}")
            time.sleep(0.02)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        self.hub.endpoint = self.url
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
            raise HubsimStartError(
                f"hubsim cannot listen on {self.host}:{self.port}: {e.strerror or e}"
            ) from e

    def stop(self) -> None:
        """Stop serving and deliver the webhooks still queued."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=START_TIMEOUT_S)
        self._server = self._thread = None
        self.hub.webhooks.close()

    def serve_forever(self) -> None:
        """Block until Ctrl+C or SIGTERM (or the server dies), then stop cleanly.

        The signals only set a flag: a KeyboardInterrupt raised inside `Thread.join` can leave the thread's
        lock in a state that breaks the interpreter's shutdown, so the main thread waits on an Event instead.
        """
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not stop.is_set() and self._thread is not None and self._thread.is_alive():
                stop.wait(0.5)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.stop()

    def __enter__(self) -> HubsimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
