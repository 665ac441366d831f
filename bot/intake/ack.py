"""The webhook's acknowledgement, `POST /webhooks/hub`, as a bare ASGI handler: verify, parse once, spool,
answer.

It runs before every answer the Hub waits for, on the server's one event loop, beside whatever else the
machine does (a build at normal priority included). So it does only what the answer depends on, and no more:
the server hands it the request ahead of FastAPI's middleware and routing, the secret is compared as bytes
prepared once, the body is parsed once, the event is spooled before the answer leaves and committed with
the others of its moment right after (see `ingest`), and per request it touches two prebound metrics and
logs nothing unless something is wrong. The answer names the delivery (the SHA-256 of its body); whether it
duplicates a stored event is decided as it is committed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, MutableMapping
from typing import Any

from prometheus_client import Counter

from bot.dashboard.metrics import WebhookMetrics
from bot.errors import WebhookError, WebhookTooLarge
from bot.intake.ingest import Backlogged, EventWriter
from bot.intake.webhooks import check_secret, parse_body

log = logging.getLogger(__name__)

PATH = "/webhooks/hub"
WEBHOOKS_DISABLED = "webhooks are disabled: no webhook_secret is configured (set QUANTBOT_WEBHOOK_SECRET)"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]


class ClientGone(Exception):
    """The client closed the connection before its body arrived: nobody waits for an answer."""


class Acknowledger:
    """The ASGI app of `POST /webhooks/hub` (the server also routes it, for anything its fast path skips)."""

    def __init__(
        self,
        *,
        secret: str,
        max_bytes: int,
        writer: EventWriter,
        metrics: WebhookMetrics,
    ) -> None:
        self._secret = secret.encode("utf-8", "surrogatepass")
        self._max_bytes = max_bytes
        self.writer = writer
        self._metrics = metrics
        self._counters: dict[int, Counter] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        try:
            status, answer = await self._answer(scope, receive)
        except WebhookError as e:
            log.info("refused webhook: %s %s", e.status_code, e.message)
            status, answer = e.status_code, {"error": e.message}
        except ClientGone:
            return
        except Exception as e:  # answered as the server's catch-all answers the rest
            self._metrics.internal_errors.inc()
            log.error("unexpected error on POST %s", PATH, exc_info=e)
            status, answer = 500, {"error": "internal error"}
        self._count(status)
        if status in (200, 202):
            self._metrics.ack_seconds.observe(time.perf_counter() - started)
        await send_json(send, status, answer)

    async def _answer(self, scope: Scope, receive: Receive) -> tuple[int, dict[str, Any]]:
        if not self._secret:
            return 503, {"error": WEBHOOKS_DISABLED}
        given, declared = _headers(scope)
        check_secret(given, self._secret)
        event = parse_body(await _read_body(receive, declared, self._max_bytes))
        if event.ignored:
            log.info("ignored webhook %s (%s): %s", ascii(event.scope), event.delivery_id[:12], event.ignored)
        try:
            self.writer.accept(event)
        except (Backlogged, OSError) as e:
            log.error("could not spool webhook %s: %s", event.delivery_id[:12], e)
            return 503, {"error": "event store unavailable; retry later"}
        if event.ignored:
            return 202, {"status": "ignored", "reason": event.ignored, "delivery_id": event.delivery_id}
        return 202, {"status": "accepted", "delivery_id": event.delivery_id}

    def _count(self, status: int) -> None:
        counter = self._counters.get(status)
        if counter is None:
            counter = self._counters[status] = self._metrics.requests.labels(str(status))
        counter.inc()


async def send_json(send: Send, status: int, answer: dict[str, Any]) -> None:
    """Answer with `answer` as JSON, rendered as FastAPI's `JSONResponse` renders it."""
    body = _ENCODER.encode(answer).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# Made once: `json.dumps` with an option builds an encoder per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _headers(scope: Scope) -> tuple[bytes | None, bytes | None]:
    """The secret header and Content-Length, as sent (ASGI gives header names in lower case)."""
    given = declared = None
    for name, value in scope["headers"]:
        if name == b"x-webhook-secret":
            given = value
        elif name == b"content-length":
            declared = value
    return given, declared


async def _read_body(receive: Receive, declared: bytes | None, limit: int) -> bytes:
    """The body, read in chunks and abandoned as soon as it passes `limit` bytes (or says it will)."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise WebhookTooLarge(f"body of {declared.decode()} bytes is over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise WebhookTooLarge(f"body is over the {limit}-byte limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
