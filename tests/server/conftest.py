"""A real bot server for the server tests: uvicorn in a thread on a free loopback port, SQLite in tmp_path.

Payloads are the recorded ones under tests/samples/ (the `payloads` fixture of tests/conftest.py), which the
dispatcher tests use too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from bot.intake.server import create_app
from bot.settings import load_settings
from bot.threaded_server import ThreadedServer
from state import EventRecord, Store, open_store, sqlite_url

SECRET = "test-webhook-secret"


@dataclass
class BotServer:
    """A running server: its URL, store, an HTTP client, and the event ids `on_event` was called with."""

    url: str
    store: Store
    client: httpx.Client
    app: Any
    notified: list[int] = field(default_factory=list)
    secret: str = SECRET

    def deliver(self, payload: Any, *, secret: str | None = SECRET, **kwargs: Any) -> httpx.Response:
        """POST a payload (a dict is sent as JSON, bytes as they are) to the webhook endpoint; once it is
        accepted, wait for its commit, as the window after an answer lets it happen."""
        headers = dict(kwargs.pop("headers", {}))
        if secret is not None:
            headers["X-Webhook-Secret"] = secret
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        response = self.client.post("/webhooks/hub", content=body, headers=headers, **kwargs)
        if response.status_code == 202:
            self.flush()
        return response

    def flush(self) -> None:
        """Wait until what the server accepted so far is committed (it answers before it commits) and the
        dispatcher woken for it."""
        assert self.app.ack.writer.flush(), "the server's event writer did not commit"
        self.client.get("/healthz")  # a request after the wake-ups on the server's loop: they have run

    def stored(self, response: httpx.Response) -> EventRecord:
        """The event an accepted delivery became, once committed."""
        self.flush()
        delivery = response.json()["delivery_id"]
        return next(e for e in self.store.events.recent(1000) if e.delivery_id == delivery)

    def internal_errors(self) -> float:
        return self.app.state.metrics.internal_errors._value.get()


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run `app` under uvicorn in a thread; yields its base URL, stops it cleanly afterwards."""
    with ThreadedServer(app, name="uvicorn-test", lifespan="on") as server:
        yield server.url


@pytest.fixture
def make_server(tmp_path) -> Iterator[Callable[..., BotServer]]:
    """Start a bot server with setting overrides (and optionally an `on_event`); stopped after the test."""
    stack = ExitStack()

    def start(on_event: Callable[[int], object] | None = None, **overrides: Any) -> BotServer:
        settings = load_settings(**({"data_dir": tmp_path, "webhook_secret": SECRET} | overrides))
        store = open_store(sqlite_url(settings.data_dir))
        stack.callback(store.close)
        notified: list[int] = []

        def record(event_id: int, event: Any) -> None:
            notified.append(event_id)
            if on_event is not None:
                on_event(event_id)

        app = create_app(settings, store, on_event=record)
        url = stack.enter_context(serve(app))
        client = stack.enter_context(httpx.Client(base_url=url, timeout=30))
        return BotServer(url, store, client, app, notified)

    with stack:
        yield start


@pytest.fixture
def bot(make_server: Callable[..., BotServer]) -> BotServer:
    """A bot server on the default settings with the test secret."""
    return make_server()
