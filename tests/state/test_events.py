"""Events: a duplicate delivery collapses to one row; each event is processed once; counts for /metrics."""

from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy.exc import DBAPIError

from state import GuardFailed, NewEvent, NotFound, Store, comment_key, delivery_key, revision_key


def _record(store: Store, key: str = "delivery:abc", scope: str = "repo.content"):
    return store.events.record(
        delivery_id="abc", scope=scope, action="update", payload={"n": 1}, dedup_key=key, repo="org/model"
    )


def test_same_delivery_five_times_is_one_event(store: Store) -> None:
    results = [_record(store) for _ in range(5)]

    assert [r.created for r in results] == [True, False, False, False, False]
    assert len({r.event_id for r in results}) == 1
    assert [e.id for e in store.events.pending()] == [results[0].event_id]


def test_simultaneous_duplicates_are_one_event(store: Store) -> None:
    results = []
    start = threading.Barrier(5)

    def deliver() -> None:
        start.wait()
        results.append(_record(store))

    threads = [threading.Thread(target=deliver) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert sorted(r.created for r in results) == [False, False, False, False, True]
    assert len({r.event_id for r in results}) == 1
    assert len(store.events.recent(50)) == 1


def test_stored_event_keeps_payload_and_times(store: Store) -> None:
    payload = {"comment": {"content": "/quantize gptq \u00e9\u0000"}, "nested": [1, 2.5, None, True]}
    recorded = store.events.record(
        delivery_id="d", scope="discussion.comment", action="create", payload=payload, dedup_key="k"
    )

    event = store.events.get(recorded.event_id)
    assert event.payload == payload
    assert event.received_at.tzinfo is not None and event.processed_at is None and event.outcome is None


def test_processed_once_only(store: Store) -> None:
    event_id = _record(store).event_id

    store.events.mark_processed(event_id, "handled")
    with pytest.raises(GuardFailed, match="processed"):
        store.events.mark_processed(event_id, "failed", "again")

    event = store.events.get(event_id)
    assert (event.outcome, event.error) == ("handled", None) and event.processed_at is not None
    assert store.events.pending() == []
    with pytest.raises(NotFound):
        store.events.mark_processed(12345, "handled")


def test_counts_by_scope_and_outcome(store: Store) -> None:
    first = _record(store, "a").event_id
    _record(store, "b")
    _record(store, "c", scope="discussion.comment")
    store.events.mark_processed(first, "refused", "not eligible: no safetensors")

    assert store.events.counts() == {
        ("repo.content", "refused"): 1,
        ("repo.content", "pending"): 1,
        ("discussion.comment", "pending"): 1,
    }
    assert [e.error for e in store.events.recent(outcomes=["refused"])] == ["not eligible: no safetensors"]


def test_dedup_keys_follow_the_three_rules() -> None:
    assert delivery_key("d1") == delivery_key("d1") != delivery_key("d2")
    sha = "5" * 40
    assert revision_key("repo.content", "update", "o/m", sha) != revision_key(
        "repo.content", "update", "o/n", sha
    )
    assert revision_key("repo.content", "update", "o/m", sha) != revision_key("repo", "update", "o/m", sha)
    assert (
        comment_key("create", "c1") != comment_key("update", "c1", "v1") != comment_key("update", "c1", "v2")
    )
    long = revision_key("repo.content", "update", "o/" + "m" * 96, "x" * 400)
    assert len(long) <= 255 and long != revision_key("repo.content", "update", "o/" + "m" * 96, "x" * 401)


def test_one_batch_with_duplicates_inside_and_outside(store: Store) -> None:
    before = _record(store, "old").event_id
    batch = [
        NewEvent("d1", "repo.content", "update", {"n": 1}, "new"),
        NewEvent("d2", "repo.content", "update", {"n": 2}, "old"),
        NewEvent("d3", "repo.content", "update", {"n": 3}, "new"),
    ]

    first, duplicate_of_stored, duplicate_in_batch = store.events.record_many(batch)

    assert first.created and not duplicate_of_stored.created and not duplicate_in_batch.created
    assert duplicate_of_stored.event_id == before and duplicate_in_batch.event_id == first.event_id
    assert store.events.get(first.event_id).payload == {"n": 1}


def test_events_stored_with_their_delivered_text_read_back_as_their_payloads(store: Store) -> None:
    comment = {"comment": {"content": "/quantize gptq é 😀 \u0000"}, "nested": [1, 2.5, None, True]}
    payloads = [comment, {"n": 2}]
    texts = [json.dumps(payloads[0], ensure_ascii=False, indent=2), '{"n":  2}']
    events = [
        NewEvent(f"d{i}", "discussion.comment", "create", payload, f"key-{i}", text=text)
        for i, (payload, text) in enumerate(zip(payloads, texts, strict=True))
    ]

    alone = store.events.record_many(events[:1])  # one event: one statement
    batch = store.events.record_many(events)  # several: one transaction

    assert [r.created for r in alone + batch] == [True, False, True]
    assert [store.events.get(r.event_id).payload for r in batch] == payloads


def test_a_failed_batch_stores_nothing_and_the_appender_goes_on(store: Store) -> None:
    appender = store.events.appender()
    good = NewEvent("d1", "repo.content", "update", {"n": 1}, "key-1")
    broken = NewEvent("d2", None, "update", {"n": 2}, "key-2")  # type: ignore[arg-type]  # scope is NOT NULL
    try:
        with pytest.raises(DBAPIError):
            appender.append([good, broken])
        [stored] = appender.append([good])  # on a fresh connection: the failed one was dropped
    finally:
        appender.close()

    assert stored.created and store.events.get(stored.event_id).payload == {"n": 1}
    assert [e.dedup_key for e in store.events.recent()] == ["key-1"]  # the failed batch left nothing


def test_former_names_follow_moves_back(store: Store) -> None:
    """A repo renamed twice: both older names, newest first; a rename elsewhere is not this repo's."""

    def move(delivery: str, old: str, new: str) -> None:
        store.events.record(
            delivery_id=delivery,
            scope="repo",
            action="move",
            payload={"repo": {"name": old}, "movedTo": {"name": new}},
            dedup_key=f"delivery:{delivery}",
            repo=old,
        )

    move("m1", "alice/Tiny", "alice/tiny-v2")
    move("m2", "alice/tiny-v2", "org/Tiny-v3")
    move("m3", "bob/other", "bob/other-2")

    assert store.events.former_names("org/tiny-v3") == ["alice/tiny-v2", "alice/Tiny"]
    assert store.events.former_names("alice/tiny-v2") == ["alice/Tiny"]
    assert store.events.former_names("alice/Tiny") == []
