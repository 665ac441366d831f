"""The dispatcher: every stored event handled once, in order; a failing handler never stops the others."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from bot.errors import HubUnavailable
from bot.intake.dispatcher import Dispatcher
from bot.intake.webhooks import Event, event_from_payload
from handlers.context import Context, Options
from handlers.router import HANDLED, IGNORED, Router
from state import Store


@pytest.fixture
def push(payloads: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The recorded commit on main (tests/samples/main_commit.json)."""
    return payloads["main_commit"]


def _store_event(store: Store, event: Event) -> int:
    return store.events.record(
        delivery_id=event.delivery_id, scope=event.scope, action=event.action, payload=event.payload,
        dedup_key=event.dedup_key, repo=event.repo,
    ).event_id  # fmt: skip


def _push_event(push: dict[str, Any], sha: str) -> Event:
    payload = copy.deepcopy(push)
    payload["repo"]["headSha"] = payload["updatedRefs"][0]["newSha"] = sha
    return event_from_payload(payload, f"delivery-{sha[:6]}")


def test_a_failing_handler_marks_its_event_failed_and_the_next_is_still_handled(store: Store, push) -> None:
    seen: list[str] = []
    router = Router()

    @router.register("repo.content", action="update")
    def handler(ctx: Context) -> str:
        sha = ctx.hook.updated_refs[0].new_sha
        seen.append(sha)
        if sha.startswith("b"):
            raise RuntimeError("the Hub fell over")
        assert ctx.repo == "some-user/some-repo" and ctx.event.delivery_id.startswith("delivery-")
        return HANDLED

    ids = [_store_event(store, _push_event(push, c * 40)) for c in "abc"]
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


def test_the_dispatcher_thread_wakes_on_notify(store: Store, push) -> None:
    router = Router()
    router.add(lambda ctx: HANDLED, "repo.content")
    dispatcher = Dispatcher(
        store, hub=None, options=Options(bot_name="q", namespace="q"), planner=None, router=router, sweep_s=60
    )  # type: ignore[arg-type]
    dispatcher.start()
    try:
        event = _push_event(push, "d" * 40)
        event_id = _store_event(store, event)
        dispatcher.wake(event_id, event)
        deadline = time.monotonic() + 10
        while store.events.get(event_id).processed_at is None:
            assert time.monotonic() < deadline, "the woken dispatcher did not handle the event"
            time.sleep(0.05)
    finally:
        dispatcher.stop()
    assert store.events.get(event_id).outcome == "handled"


def test_a_hub_outage_leaves_the_event_pending_and_it_is_retried(
    store: Store, push, monkeypatch: pytest.MonkeyPatch
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

    event_id = _store_event(store, _push_event(push, "e" * 40))
    dispatcher = Dispatcher(
        store, hub=None, options=Options(bot_name="q", namespace="q"), planner=None, router=router
    )  # type: ignore[arg-type]
    dispatcher.drain()
    assert len(tries) == 3 and store.events.get(event_id).outcome == "handled"


def test_the_parse_handed_on_by_wake_is_what_the_handler_gets(store: Store, push) -> None:
    """Validated once where it entered: the dispatcher uses that parse, not a second one."""
    seen: list[Any] = []
    router = Router()
    router.add(lambda ctx: seen.append(ctx.hook) or HANDLED, "repo.content")
    dispatcher = Dispatcher(
        store, hub=None, options=Options(bot_name="q", namespace="q"), planner=None, router=router
    )  # type: ignore[arg-type]
    handed, reloaded = _push_event(push, "1" * 40), _push_event(push, "2" * 40)
    dispatcher.wake(_store_event(store, handed), handed)
    _store_event(store, reloaded)  # stored before a restart: no parse handed on
    assert dispatcher.drain() == 2
    assert seen[0] is handed.hook
    assert seen[1] is not reloaded.hook and seen[1] == reloaded.hook  # read back from the stored payload


@pytest.mark.parametrize("name", ["pr_opened", "main_commit", "command_comment", "pr_merged"])
def test_every_recorded_payload_reaches_the_handlers_and_is_politely_ignored(
    store: Store, payloads: dict[str, dict[str, Any]], name: str
) -> None:
    """The payloads the server tests post are the ones the real handlers get: none is for this bot (no watch,
    no command addressed to it, no release of its own), so each is ignored without a Hub call (hub=None)."""
    event = event_from_payload(payloads[name], f"delivery-{name}")
    event_id = _store_event(store, event)
    dispatcher = Dispatcher(
        store, hub=None, options=Options(bot_name="quantbot", namespace="quantbot"), planner=None
    )  # type: ignore[arg-type]
    dispatcher.wake(event_id, event)
    assert dispatcher.drain() == 1
    recorded = store.events.get(event_id)
    assert (recorded.outcome, recorded.error) == (IGNORED, None)
