"""The bot's HTTP face: the Hub's webhook endpoint, health and readiness, Prometheus metrics, a status page
and its JSON.

`POST /webhooks/hub` (bot/intake/ack.py) verifies, spools and acknowledges, nothing more: the event is in
the spool before the answer leaves and committed with the others of its moment right after
(bot/intake/ingest.py), and everything it causes happens afterwards in the dispatcher, which
`on_event(event_id)` wakes once it is committed. A missed wake-up loses nothing, since the dispatcher also
sweeps `store.events.pending()`.

What the bot does not act on (another scope, an action or repo type the Hub added) is stored as ignored, with
the reason, and acknowledged 202: the Hub disables webhooks that keep refusing. Bad input (wrong secret, too
big, not JSON, a payload of the wrong shape) is answered with a JSON 4xx naming what is wrong; a database
that has not answered for `ingest.MAX_BACKLOG` deliveries, or a spool the disk refuses, with a 503.
Anything else unexpected is logged with its traceback and answered with a bare JSON 500.
This module must stay light: the server process never imports torch or the toolchains.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bot.dashboard.metrics import make_registry
from bot.dashboard.status_page import snapshot
from bot.intake.ack import PATH as ACK_PATH
from bot.intake.ack import WEBHOOKS_DISABLED, Acknowledger
from bot.intake.ingest import EventWriter, OnEvent
from bot.intake.readiness import HubReadiness
from bot.settings import Settings, load_settings
from state import Store, open_store, sqlite_url

if TYPE_CHECKING:
    from jinja2 import Template

log = logging.getLogger(__name__)


class IntakeApp(FastAPI):
    """FastAPI, but for the webhook's POSTs, which go straight to the acknowledger: its middleware stack and
    routing cost as much CPU per request as the acknowledgement itself, on the path the Hub waits on."""

    ack: Acknowledger | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = scope["type"] == "http" and scope["path"] == ACK_PATH and scope["method"] == "POST"
        if fast and self.ack is not None:
            return await self.ack(scope, receive, send)
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings,
    store: Store,
    *,
    on_event: OnEvent | None = None,
    readiness: HubReadiness | None = None,
) -> FastAPI:
    """The ASGI app; `store` stays the caller's to close. With `readiness`, health says whether the Hub
    answered yet (without it, the endpoint alone: ready when the database is)."""
    budget = getattr(readiness.hub, "budget", None) if readiness is not None else None  # the token's
    registry, metrics = make_registry(store, budget)
    writer = EventWriter(
        store, settings.data_dir / "spool", window_s=settings.webhook_commit_s, on_event=on_event
    )
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        writer.close()

    app = IntakeApp(title="quantbot", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.metrics = metrics

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        metrics.internal_errors.inc()
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return _error(500, "internal error")

    # The webhook: the app hands its POSTs straight to the acknowledger (see `IntakeApp`); the route serves
    # the rest (405 for other methods).
    limit = settings.webhook_max_bytes
    app.ack = Acknowledger(secret=secret, max_bytes=limit, writer=writer, metrics=metrics)
    app.router.routes.append(Route(ACK_PATH, app.ack, methods=["POST"]))

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        """Liveness: 503 only when the database is gone; a Hub not answering yet is `degraded`, still 200."""
        try:
            store.ping()
        except SQLAlchemyError as e:
            return _error(503, f"database unavailable: {type(e).__name__}")
        webhooks = "enabled" if secret else WEBHOOKS_DISABLED
        if readiness is not None and not readiness.ready:
            return JSONResponse(
                {"status": "degraded: Hub unreachable", "hub": readiness.last_error, "webhooks": webhooks}
            )
        return JSONResponse({"status": "ok", "webhooks": webhooks})

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        """Readiness: 200 once the database and the Hub both answered (webhooks are stored either way)."""
        answer = healthz()
        if answer.status_code == 200 and readiness is not None and not readiness.ready:
            return _error(503, "the Hub has not answered yet")
        return answer

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    def hub_problem() -> str | None:
        """Why the bot cannot act yet (the Hub has not answered `whoami`), for the status page's banner."""
        if readiness is None or readiness.ready:
            return None
        return readiness.last_error or "the Hub has not answered yet"

    @app.get("/", response_class=HTMLResponse)
    def status() -> HTMLResponse:
        page = snapshot(store, settings.hf_endpoint, hub_problem=hub_problem(), budget=budget)
        return HTMLResponse(_status_template().render(page))

    @app.get("/api/status")
    def status_json() -> JSONResponse:
        return JSONResponse(snapshot(store, settings.hf_endpoint, hub_problem=hub_problem(), budget=budget))

    return app


@functools.cache
def _status_template() -> Template:
    """Loaded on the first visit: Jinja2 stays out of the server's start-up time."""
    from jinja2 import Environment, FileSystemLoader

    pages = Environment(loader=FileSystemLoader(str(resources.files("templates"))), autoescape=True)
    return pages.get_template("status.html.j2")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status)


def store_url(settings: Settings) -> str:
    """The database the settings name: `database_url`, else SQLite at `<data dir>/quantbot.db`."""
    return settings.database_url or sqlite_url(settings.data_dir)


def open_configured_store(settings: Settings) -> Store:
    """The store the settings name, migrated, with their SQLite durability setting."""
    return open_store(store_url(settings), sqlite_synchronous=settings.sqlite_synchronous)


def app_from_settings() -> FastAPI:
    """For `uvicorn --factory bot.intake.server:app_from_settings`: the endpoint alone, on the settings."""
    settings = load_settings()
    return create_app(settings, open_configured_store(settings))
