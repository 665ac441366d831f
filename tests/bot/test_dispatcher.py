"""The dispatcher: every stored event handled once, in order; a failing handler never stops the others."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.errors import HubUnavailable
from bot.intake.dispatcher import Dispatcher
from bot.intake.webhooks import event_from_payload
from handlers.context import Context, Options
from handlers.router import HANDLED, Router
from state import Store, open_store, sqlite_url

PUSH = {
    "event": {"action": "update", "scope": "repo.content"},
    "repo": {
        "type": "model", "name": "alice/model", "id": "6366c000a2abcdf2fd69a080", "private": False,
        "url": {"web": "http://hub/alice/model", "api": "http://hub/api/models/alice/model"},
        "owner": {"id": "6366c000a2abcdf2fd69a081"}, "headSha": "a" * 40,
    },
    "updatedRefs": [{"ref": "refs/heads/main", "oldSha": None, "newSha": "a" * 40}],
    "webhook": {"id": "6366c000a2abcdf2fd69a082", "version": 3},
}  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(sqlite_url(tmp_path))
    yield opened
    opened.close()


def _record(store: Store, sha: str) -> int:
    payload = copy.deepcopy(PUSH)
    payload["repo"]["headSha"] = payload["updatedRefs"][0]["newSha"] = sha
    event = event_from_payload(payload, f"delivery-{sha[:6]}")
    return store.events.record(
        delivery_id=event.delivery_id, scope=event.scope, action=event.action, payload=event.payload,
        dedup_key=event.dedup_key, repo=event.repo,
    ).event_id  # fmt: skip


def test_a_failing_handler_marks_its_event_failed_and_the_next_is_still_handled(store: Store) -> None:
    seen: list[str] = []
    router = Router()

    @router.register("repo.content", action="update")
    def handler(ctx: Context) -> str:
        sha = ctx.hook.updated_refs[0].new_sha
        seen.append(sha)
        if sha.startswith("b"):
            raise RuntimeError("the Hub fell over")
        assert ctx.repo == "alice/model" and ctx.event.delivery_id.startswith("delivery-")
        return HANDLED

    ids = [_record(store, c * 40) for c in "abc"]
    dispatcher = Dispatcher(
        store,
        hub=None,
        options=Options(bot_name="quantbot", namespace="quantbot"),
        planner=None,
        router=router,
    )  # type: ignore[arg-type]
    assert dispatcher.drain() == 3
    assert seen == ["a" * 40, "b" * 40, "c" * 40]
    events = [store.events.get(i) for i in ids]
    assert [e.outcome for e in events] == ["handled", "failed", "handled"]
    assert events[1].error == "RuntimeError: the Hub fell over"
    assert store.events.pending() == []
    assert dispatcher.drain() == 0  # processed once, never again


def test_the_dispatcher_thread_wakes_on_notify(store: Store) -> None:
    router = Router()
    router.add(lambda ctx: HANDLED, "repo.content")
    dispatcher = Dispatcher(
        store, hub=None, options=Options(bot_name="q", namespace="q"), planner=None, router=router, sweep_s=60
    )  # type: ignore[arg-type]
    dispatcher.start()
    try:
        event_id = _record(store, "d" * 40)
        dispatcher.wake(event_id)
        deadline = time.monotonic() + 10
        while store.events.get(event_id).processed_at is None:
            assert time.monotonic() < deadline, "the woken dispatcher did not handle the event"
            time.sleep(0.05)
    finally:
        dispatcher.stop()
    assert store.events.get(event_id).outcome == "handled"


def test_a_hub_outage_leaves_the_event_pending_and_it_is_retried(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.intake.dispatcher.RETRY_FIRST_S", 0.0)
    tries: list[int] = []
    router = Router()

    @router.register("repo.content")
    def flaky(ctx: Context) -> str:
        tries.append(1)
        if len(tries) < 3:
            raise HubUnavailable("the Hub failed with 503")
        return HANDLED

    event_id = _record(store, "e" * 40)
    dispatcher = Dispatcher(
        store, hub=None, options=Options(bot_name="q", namespace="q"), planner=None, router=router
    )  # type: ignore[arg-type]
    dispatcher.drain()
    assert len(tries) == 3 and store.events.get(event_id).outcome == "handled"
