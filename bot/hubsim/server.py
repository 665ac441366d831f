"""Serving hubsim on a port (bot/threaded_server.py), for the tests, the demo and the CLI.

The CLI starts the thread too and waits in `serve_forever`, so its banner is printed only once the port
really accepts connections, and Ctrl+C / SIGTERM stop it cleanly.
"""

from __future__ import annotations

from pathlib import Path

from bot.errors import HubsimStartError
from bot.hubsim.app import HubsimApp
from bot.hubsim.persistence import DataDir
from bot.hubsim.service import HubService
from bot.hubsim.users import DEFAULT_USER, Directory, User
from bot.threaded_server import ThreadedServer


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
        self._server = ThreadedServer(
            HubsimApp(hub), host, port, name="hubsim", lifespan="off", error=HubsimStartError
        )

    @property
    def host(self) -> str:
        return self._server.host

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        """The endpoint to give the client (`HF_ENDPOINT`)."""
        return self._server.url

    @property
    def default_user(self) -> User:
        """The first configured user (the one `quantbot hubsim` suggests in its `export` line)."""
        return next(iter(self.hub.users.users.values()))

    def start(self) -> HubsimServer:
        """Serve in a daemon thread; returns once the socket accepts connections."""
        self._server.start()
        self.hub.endpoint = self.hub.jobs.endpoint = self.url
        return self

    def stop(self) -> None:
        """Stop serving and deliver the webhooks still queued."""
        self._server.stop()
        self.hub.webhooks.close()
        self.hub.jobs.close()

    def serve_forever(self) -> None:
        """Block until Ctrl+C or SIGTERM (or the server dies), then stop cleanly."""
        try:
            self._server.wait()
        finally:
            self.stop()

    def __enter__(self) -> HubsimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
