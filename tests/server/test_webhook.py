"""POST /webhooks/hub on a running server: verify, spool before answering, commit, deduplicate, refuse bad
input."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from huggingface_hub import WebhookPayload
from sqlalchemy import text

from state import EventRecord


def _stored(bot) -> list[EventRecord]:
    bot.flush()
    return bot.store.events.recent(100)


@pytest.mark.parametrize("name", ["pr_opened", "main_commit", "command_comment", "pr_merged"])
def test_contract_payloads_are_acknowledged_then_stored(bot, payloads, name: str) -> None:
    payload = payloads[name]
    WebhookPayload.model_validate(payload)  # the fixture is what huggingface_hub itself accepts
    body = json.dumps(payload).encode()

    response = bot.deliver(body)

    assert response.status_code == 202
    assert response.json() == {"status": "accepted", "delivery_id": hashlib.sha256(body).hexdigest()}
    event = bot.stored(response)
    assert (event.scope, event.action, event.repo) == (
        payload["event"]["scope"], payload["event"]["action"], payload["repo"]["name"],
    )  # fmt: skip
    assert event.payload == payload and event.processed_at is None
    assert bot.notified == [event.id]


# A comment beyond ASCII as a body in each encoding JSON allows: valid UTF-8 is stored as delivered, the rest
# re-serialised; either way it reads back as the payload, never a 500. The lone surrogate (which no database
# takes as text) arrives as UTF-8's bytes for it, which the lenient decoding lets through.
BODY_ENCODINGS: dict[str, Any] = {
    "utf-8": ("é 😀 \\u0000", lambda text: text.encode()),
    "utf-16": ("é 😀", lambda text: text.encode("utf-16")),
    "a lone surrogate in utf-8": ("\ud800 é", lambda text: text.encode("utf-8", "surrogatepass")),
}


@pytest.mark.parametrize("name", BODY_ENCODINGS)
def test_a_body_beyond_ascii_is_stored_as_its_payload(bot, payloads, name: str) -> None:
    content, encode = BODY_ENCODINGS[name]
    payload = payloads["command_comment"]
    payload["comment"]["content"] = f"@my-bot /quantize {content}"

    response = bot.deliver(encode(json.dumps(payload, ensure_ascii=False, indent=1)))

    assert response.status_code == 202, response.text
    assert bot.stored(response).payload == payload


def test_same_delivery_five_times_is_one_event(bot, payloads) -> None:
    answers = [bot.deliver(payloads["main_commit"]) for _ in range(5)]

    assert [a.status_code for a in answers] == [202] * 5
    stored = _stored(bot)
    assert len(stored) == 1
    assert bot.notified == [stored[0].id]  # the dispatcher is woken once


def test_same_commit_from_two_hooks_is_one_event(bot, payloads) -> None:
    first = payloads["main_commit"]
    second = json.loads(json.dumps(first))
    second["webhook"]["id"] = "7390e855e30d9209411de93c"  # another hook, another body, the same commit

    assert bot.deliver(first).status_code == 202
    assert bot.deliver(second).status_code == 202
    assert [e.delivery_id for e in _stored(bot)] == [hashlib.sha256(json.dumps(first).encode()).hexdigest()]


def test_a_new_revision_and_an_edited_comment_are_new_events(bot, payloads) -> None:
    commit = payloads["main_commit"]
    newer = json.loads(json.dumps(commit))
    newer["repo"]["headSha"] = newer["updatedRefs"][0]["newSha"] = "1" * 40
    comment = payloads["command_comment"]
    edited = json.loads(json.dumps(comment))
    edited["event"]["action"] = "update"
    edited["comment"]["content"] = "@my-bot /quantize gptq"

    statuses = [bot.deliver(p).json()["status"] for p in (commit, newer, comment, edited)]

    assert statuses == ["accepted"] * 4
    assert len(_stored(bot)) == 4


def test_event_is_committed_before_the_dispatcher_is_woken(make_server, payloads) -> None:
    seen: list[EventRecord] = []
    holder: dict[str, Any] = {}
    bot = make_server(on_event=lambda event_id: seen.append(holder["bot"].store.events.get(event_id)))
    holder["bot"] = bot

    response = bot.deliver(payloads["command_comment"])

    assert response.status_code == 202
    stored = bot.stored(response)
    assert [e.id for e in seen] == [stored.id]


def test_a_failing_on_event_loses_nothing(make_server, payloads) -> None:
    def broken(event_id: int) -> None:
        raise RuntimeError("dispatcher down")

    bot = make_server(on_event=broken)
    response = bot.deliver(payloads["main_commit"])

    assert response.status_code == 202
    assert [e.id for e in bot.store.events.pending()] == [bot.stored(response).id]


@pytest.mark.parametrize(
    ("secret", "status", "message"),
    [
        (None, 401, "X-Webhook-Secret header not set"),
        ("wrong", 403, "invalid X-Webhook-Secret"),
        ("", 403, "invalid X-Webhook-Secret"),
        ("test-webhook-secret" + "x", 403, "invalid X-Webhook-Secret"),
    ],
)
def test_secret_missing_or_wrong(bot, payloads, secret: str | None, status: int, message: str) -> None:
    response = bot.deliver(payloads["main_commit"], secret=secret)

    assert (response.status_code, response.json()) == (status, {"error": message})
    assert _stored(bot) == [] and bot.notified == []


def test_secret_with_bytes_outside_ascii_is_refused_not_crashed(bot, payloads) -> None:
    response = bot.deliver(
        payloads["main_commit"], secret=None, headers={"X-Webhook-Secret": "sécret".encode("latin-1")}
    )
    assert response.status_code == 403


def test_without_a_configured_secret_webhooks_are_off(make_server, payloads) -> None:
    bot = make_server(webhook_secret=None)
    response = bot.deliver(payloads["main_commit"], secret="anything")
    assert response.status_code == 503 and "no webhook_secret" in response.json()["error"]
    assert _stored(bot) == []


def _wrong(payloads, path: str, value: Any) -> dict[str, Any]:
    payload = payloads["command_comment"]
    *parents, last = path.split(".")
    node = payload
    for key in parents:
        node = node[key]
    node[last] = value
    return payload


MALFORMED_BODIES = {
    "truncated": (
        b'{"event":{"action":"create","scope":"discussion.comment"},"repo":{"type":"mod',
        400,
        "not valid JSON",
    ),
    "empty": (b"", 400, "not valid JSON"),
    "array": (b"[1, 2]", 400, "must be a JSON object, not an array"),
    "string": (b'"hello"', 400, "not a string"),
    "nan": (b'{"a": NaN}', 400, "NaN is not JSON"),
    "not utf-8": (b'{"a": "\xff\xfe"}', 400, "not valid JSON"),
    "deeply nested": (b"[" * 200_000 + b"]" * 200_000, 400, "not valid JSON"),
    "huge integer": (b'{"a": ' + b"9" * 5000 + b"}", 400, "not valid JSON"),
}


@pytest.mark.parametrize("name", MALFORMED_BODIES)
def test_bodies_that_are_not_a_json_object_get_400(bot, name: str) -> None:
    body, status, message = MALFORMED_BODIES[name]
    response = bot.deliver(body)
    assert response.status_code == status and message in response.json()["error"]
    assert _stored(bot) == []


WRONG_SHAPES = [
    ("discussion.num", "4", "discussion.num: Input should be a valid integer"),
    ("repo.private", "false", "repo.private: Input should be a valid boolean"),
    ("repo", "some-user/some-repo", "repo: Input should be a valid dictionary"),
    ("event.action", 7, "event.action: Input should be a valid string"),
    ("repo.name", "../../etc/passwd", "repo.name: String should match pattern"),
    ("comment.id", "x" * 500, "comment.id: String should match pattern"),
    ("comment.url", None, "comment.url: Input should be a valid dictionary"),
    ("webhook", None, "webhook: Input should be a valid dictionary"),
    ("webhook.version", 4, "unsupported webhook version 4 (expected 3)"),
    ("webhook.version", "3", 'unsupported webhook version "3" (expected 3)'),
]


@pytest.mark.parametrize(("path", "value", "message"), WRONG_SHAPES)
def test_wrong_shapes_get_422_naming_the_field(bot, payloads, path: str, value: Any, message: str) -> None:
    response = bot.deliver(_wrong(payloads, path, value))

    assert response.status_code == 422
    assert response.json()["error"].startswith(message)
    assert _stored(bot) == []


def test_missing_required_parts_get_422(bot, payloads) -> None:
    payload = payloads["main_commit"]
    del payload["repo"]
    response = bot.deliver(payload)
    assert (response.status_code, response.json()) == (422, {"error": "repo: Field required"})


def _chunks(size: int) -> Iterator[bytes]:
    block = b" " * 65536
    for _ in range(size // len(block)):
        yield block


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_5_mb_body_gets_413(bot, declared: bool) -> None:
    size = 5 * 1024 * 1024
    body = b" " * size if declared else _chunks(size)
    try:
        response = bot.client.post("/webhooks/hub", content=body, headers={"X-Webhook-Secret": bot.secret})
    except httpx.TransportError:
        pytest.fail("the server hung up instead of answering 413")
    assert response.status_code == 413 and "1048576-byte limit" in response.json()["error"]


def test_body_cap_is_a_setting(make_server, payloads) -> None:
    bot = make_server(webhook_max_bytes=256)
    assert bot.deliver(payloads["main_commit"]).status_code == 413


def test_unknown_sub_scope_is_an_update_of_its_parent(bot, payloads) -> None:
    payload = payloads["main_commit"]
    payload["event"] = {"action": "create", "scope": "repo.content.lfs"}

    event = bot.stored(bot.deliver(payload))

    assert (event.scope, event.action) == ("repo.content", "update")


def test_after_every_kind_of_bad_input_the_server_still_answers(bot, payloads) -> None:
    for body, _, _ in MALFORMED_BODIES.values():
        bot.deliver(body)
    for path, value, _ in WRONG_SHAPES:
        bot.deliver(_wrong(json.loads(json.dumps(payloads)), path, value))
    bot.deliver(b" " * (5 * 1024 * 1024))
    bot.deliver(payloads["main_commit"], secret=None)
    bot.client.post(
        "/webhooks/hub", content=b"{}", headers={"X-Webhook-Secret": bot.secret, "Content-Type": "text/xml"}
    )

    assert bot.client.get("/healthz").status_code == 200
    assert bot.deliver(payloads["main_commit"]).status_code == 202
    assert bot.internal_errors() == 0  # none of it reached the catch-all handler


def test_a_database_that_takes_no_events_loses_no_delivery_until_the_backlog_is_full(
    bot, payloads, tmp_path, monkeypatch
) -> None:
    with bot.store.db.engine.begin() as connection:
        connection.execute(text("DROP TABLE events"))

    def post(payload: dict[str, Any]) -> httpx.Response:  # not `deliver`, which waits for the commit
        return bot.client.post("/webhooks/hub", json=payload, headers={"X-Webhook-Secret": bot.secret})

    first = post(payloads["main_commit"])
    assert first.status_code == 202 and not bot.app.ack.writer.flush(timeout=0.3)
    spooled = b"".join(path.read_bytes() for path in (tmp_path / "spool").iterdir())
    assert first.json()["delivery_id"].encode() in spooled  # kept for the next start's replay

    monkeypatch.setattr(bot.app.ack.writer, "_max_backlog", 1)
    refused = post(payloads["command_comment"])
    assert (refused.status_code, refused.json()) == (503, {"error": "event store unavailable; retry later"})
    assert bot.internal_errors() == 0


def test_a_burst_of_deliveries_and_duplicates_is_answered_and_stored_once_each(bot, payloads) -> None:
    def commit(i: int) -> dict[str, Any]:
        payload = json.loads(json.dumps(payloads["main_commit"]))
        payload["repo"]["headSha"] = payload["updatedRefs"][0]["newSha"] = f"{i:040x}"
        return payload

    bodies = [commit(i % 20) for i in range(60)]  # 20 commits, each delivered 3 times, all at once

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=bot.url, timeout=30) as client:
            return await asyncio.gather(
                *(
                    client.post("/webhooks/hub", json=b, headers={"X-Webhook-Secret": bot.secret})
                    for b in bodies
                )
            )

    answers = asyncio.run(burst())

    assert [a.status_code for a in answers] == [202] * 60
    stored = _stored(bot)
    shas = sorted({b["repo"]["headSha"] for b in bodies})
    assert sorted(e.payload["repo"]["headSha"] for e in stored) == shas
    assert sorted(bot.notified) == sorted(e.id for e in stored)  # the dispatcher woken once per commit
