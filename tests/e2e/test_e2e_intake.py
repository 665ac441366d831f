"""The webhook endpoint of a running `quantbot serve` under bad input: refused with a 4xx, nothing stored, and
the server keeps answering."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from e2e_support import BotProcess, wait_for

from state import EventRecord, Store

pytestmark = pytest.mark.slow


NOT_WATCHED = "alice/not-watched"


def _payload(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "event": {"action": "update", "scope": "repo.content"},
        "repo": {
            "type": "model",
            "name": "alice/not-watched",
            "id": "6560a1b2c3d4e5f6a7b8c9d0",
            "private": False,
            "url": {"web": "http://hub/alice/not-watched", "api": "http://hub/api/models/alice/not-watched"},
            "owner": {"id": "6560a1b2c3d4e5f6a7b8c9d1"},
            "headSha": "a" * 40,
        },
        "updatedRefs": [{"ref": "refs/heads/main", "oldSha": "b" * 40, "newSha": "a" * 40}],
        "webhook": {"id": "6560a1b2c3d4e5f6a7b8c9d2", "version": 3},
    }
    for path, value in changes.items():
        *parents, last = path.split("__")
        target = payload
        for key in parents:
            target = target[key]
        target[last] = value
    return payload


@pytest.fixture(scope="module")
def store(bot: BotProcess) -> Iterator[Store]:
    opened = bot.store()
    yield opened
    opened.close()


def _stored(store: Store) -> dict[tuple[str, str | None], int]:
    """Events stored for this module's deliveries (its repo), by scope and outcome: the shared hubsim also
    sends the bot what other modules' repos and Jobs do, and its catch-up may store their commands."""
    counts: dict[tuple[str, str | None], int] = {}
    for event in store.events.recent(1000):
        if event.repo == NOT_WATCHED:
            counts[(event.scope, event.outcome)] = counts.get((event.scope, event.outcome), 0) + 1
    return counts


def _still_answers(bot: BotProcess) -> None:
    assert httpx.get(bot.url + "/healthz", timeout=5).json() == {"status": "ok", "webhooks": "enabled"}


def test_a_missing_or_wrong_secret_is_refused(bot: BotProcess, store: Store) -> None:
    body = json.dumps(_payload()).encode()
    assert bot.post(body, secret=None).status_code == 401
    assert bot.post(body, secret="not-the-secret").status_code == 403
    assert bot.post(body, secret="").status_code == 403
    _still_answers(bot)
    assert _stored(store) == {}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (json.dumps(_payload())[:-40].encode(), 400),  # truncated JSON
        (b"\xff\xfe not utf-8", 400),
        (b"[1, 2, 3]", 400),
        (json.dumps(_payload(repo__private="yes")).encode(), 422),  # wrong type
        (json.dumps(_payload(event__action=7)).encode(), 422),
        (json.dumps(_payload(repo__name="../../etc/passwd")).encode(), 422),
        (json.dumps(_payload(webhook__version=4)).encode(), 422),
        (b'{"event": {"scope": "repo"}}' + b" " * (5 * 1024 * 1024), 413),  # 5 MB
    ],
    ids=["truncated", "not-utf8", "array", "wrong-type", "action-type", "bad-name", "version-4", "5MB"],
)
def test_malformed_payloads_get_a_4xx_and_the_server_still_answers(
    bot: BotProcess, store: Store, body: bytes, status: int
) -> None:
    answer = bot.post(body, **{"Content-Type": "application/json"})
    assert answer.status_code == status, answer.text
    assert "error" in answer.json()
    _still_answers(bot)
    assert _stored(store) == {}


def test_an_unknown_scope_is_acknowledged_and_stored_as_ignored(bot: BotProcess, store: Store) -> None:
    answer = bot.post(json.dumps(_payload(event__scope="space.runtime")).encode())
    assert answer.status_code == 202 and answer.json()["status"] == "ignored"
    wait_for(lambda: _stored(store) == {("space.runtime", "ignored"): 1}, 10, "the ignored event's commit")


def test_a_valid_delivery_after_all_that_is_stored_and_handled(bot: BotProcess, store: Store) -> None:
    answer = bot.post(json.dumps(_payload()).encode())
    assert answer.status_code == 202, answer.text
    delivery = answer.json()["delivery_id"]

    def handled() -> EventRecord | None:
        return next((e for e in store.events.recent() if e.delivery_id == delivery and e.processed_at), None)

    event = wait_for(handled, 30, "the event to be handled")
    assert event.scope == "repo.content"
    assert event.outcome == "ignored"  # alice/not-watched is not watched
    assert store.jobs.list(repo="alice/not-watched") == []


def test_sigterm_stops_the_bot_cleanly(bot: BotProcess) -> None:
    assert bot.stop(signal.SIGTERM, timeout=30) == 0
    assert "Traceback" not in bot.log()
