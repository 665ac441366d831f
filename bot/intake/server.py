"""The bot's HTTP face: the Hub's webhook endpoint, health and readiness, Prometheus metrics, a status page
and its JSON.

`POST /webhooks/hub` verifies, stores and acknowledges, nothing more: the event is committed before the answer
leaves, and everything it causes happens afterwards in the dispatcher, which `on_event(event_id)` wakes. A
missed wake-up loses nothing, since the dispatcher also sweeps `store.events.pending()`.

What the bot does not act on (another scope, an action or repo type the Hub added) is stored as ignored, with
the reason, and acknowledged 202: the Hub disables webhooks that keep refusing. Bad input (wrong secret, too
big, not JSON, a payload of the wrong shape) is answered with a JSON 4xx naming what is wrong; an unavailable
database with a 503 (the Hub retries). Anything else unexpected is logged with its traceback and answered
with a bare JSON 500.
This module must stay light: the server process never imports torch or the toolchains.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib import resources
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from bot.dashboard.metrics import make_registry
from bot.dashboard.status_page import snapshot
from bot.errors import WebhookError, WebhookTooLarge
from bot.intake.ingest import EventWriter
from bot.intake.readiness import HubReadiness
from bot.intake.webhooks import Event, parse_body, verify_secret
from bot.settings import Settings, load_settings
from state import NewEvent, Store, open_store, sqlite_url

if TYPE_CHECKING:
    from jinja2 import Template

log = logging.getLogger(__name__)

WEBHOOKS_DISABLED = "webhooks are disabled: no webhook_secret is configured (set QUANTBOT_WEBHOOK_SECRET)"

OnEvent = Callable[[int, Event], object]
"""Called with a new event's id and its parse once it is committed (the payload is validated once, here, and
handed on). Runs on the event loop: it must only signal (put on a queue, set an `asyncio.Event` or
`threading.Event`), never do the work itself."""


def create_app(
    settings: Settings,
    store: Store,
    *,
    on_event: OnEvent | None = None,
    readiness: HubReadiness | None = None,
) -> FastAPI:
    """The ASGI app; `store` stays the caller's to close. With `readiness`, health says whether the Hub
    answered yet (without it, the endpoint alone: ready when the database is)."""
    registry, metrics = make_registry(store)
    writer = EventWriter(store)
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        writer.close()

    app = FastAPI(title="quantbot", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.metrics = metrics

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        metrics.internal_errors.inc()
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return _error(500, "internal error")

    async def receive(request: Request) -> JSONResponse:
        if not secret:
            return _error(503, WEBHOOKS_DISABLED)
        verify_secret(request.headers, secret)
        event = parse_body(await _read_body(request, settings.webhook_max_bytes))
        if event.ignored:
            log.info("ignored webhook %s (%s): %s", ascii(event.scope), event.delivery_id[:12], event.ignored)
        new = NewEvent(
            event.delivery_id,
            event.scope,
            event.action,
            event.payload,
            event.dedup_key,
            event.repo,
            event.ignored,
        )
        try:
            recorded = await writer.record(new)
        except SQLAlchemyError:
            log.exception("could not store webhook %s", event.delivery_id[:12])
            return _error(503, "event store unavailable; retry later")
        if not recorded.created:
            return JSONResponse({"status": "duplicate", "event_id": recorded.event_id}, 200)
        if event.ignored:
            answer = {"status": "ignored", "reason": event.ignored, "event_id": recorded.event_id}
            return JSONResponse(answer, 202)
        if on_event is not None:
            _notify(on_event, recorded.event_id, event)
        return JSONResponse({"status": "queued", "event_id": recorded.event_id}, 202)

    async def webhook(request: Request) -> JSONResponse:
        started = time.perf_counter()
        try:
            response = await receive(request)
        except WebhookError as e:
            log.info("refused webhook: %s %s", e.status_code, e.message)
            response = _error(e.status_code, e.message)
        metrics.requests.labels(str(response.status_code)).inc()
        if response.status_code in (200, 202):
            metrics.ack_seconds.observe(time.perf_counter() - started)
        return response

    # A plain Starlette route: the hot path skips FastAPI's dependency solving (a third of its CPU time).
    app.add_route("/webhooks/hub", webhook, methods=["POST"], include_in_schema=False)

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
        page = snapshot(store, settings.hf_endpoint, hub_problem=hub_problem())
        return HTMLResponse(_status_template().render(page))

    @app.get("/api/status")
    def status_json() -> JSONResponse:
        return JSONResponse(snapshot(store, settings.hf_endpoint, hub_problem=hub_problem()))

    return app


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, read in chunks and abandoned as soon as it passes `limit` bytes (or says it will)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise WebhookTooLarge(f"body of {declared} bytes is over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise WebhookTooLarge(f"body is over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


@functools.cache
def _status_template() -> Template:
    """Loaded on the first visit: Jinja2 stays out of the server's start-up time."""
    from jinja2 import Environment, FileSystemLoader

    pages = Environment(loader=FileSystemLoader(str(resources.files("templates"))), autoescape=True)
    return pages.get_template("status.html.j2")


def _notify(on_event: OnEvent, event_id: int, event: Event) -> None:
    try:
        on_event(event_id, event)
    except Exception:  # the event is stored; the dispatcher's sweep will find it
        log.exception("on_event(%s) failed", event_id)


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
