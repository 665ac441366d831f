"""The event writer: accepted events answered at once and committed together, a bot killed after answering
losing nothing, a database that does not answer holding the events in the spool, not the event loop."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from bot.intake import spool
from bot.intake.ingest import Backlogged, EventWriter
from bot.intake.webhooks import event_from_payload
from state import EventAppender, NewEvent, Store

ROOT = Path(__file__).resolve().parents[2]


def _payload(i: int) -> dict:
    """A recorded push, of commit `i % 10`."""
    payload = json.loads((ROOT / "tests" / "samples" / "main_commit.json").read_text())
    payload["repo"]["headSha"] = payload["updatedRefs"][0]["newSha"] = f"{i % 10:040x}"
    return payload


def _accept(writer: EventWriter, i: int) -> None:
    """As the acknowledgement does (deliveries `i` and `i + 10` are of one commit)."""
    writer.accept(event_from_payload(_payload(i), f"{i:064x}"))


def _count(store: Store) -> int:
    return sum(store.events.counts().values())


def test_a_burst_is_answered_at_once_and_committed_in_one_transaction(tmp_path, store, monkeypatch) -> None:
    commits: list[int] = []  # one transaction, one commit, per call of `append`
    append = EventAppender.append

    def counted(self: EventAppender, events):  # type: ignore[no-untyped-def]
        commits.append(len(events))
        return append(self, events)

    monkeypatch.setattr(EventAppender, "append", counted)
    woken: list[int] = []
    writer = EventWriter(store, tmp_path / "spool", window_s=5.0, on_event=lambda i, _: woken.append(i))

    async def burst() -> int:
        for i in range(50):
            _accept(writer, i)
        stored_meanwhile = _count(store)
        await asyncio.to_thread(writer.flush)
        await asyncio.sleep(0)  # the wake-ups run on this loop
        return stored_meanwhile

    assert asyncio.run(burst()) == 0  # answered before any commit
    writer.close()
    assert commits == [50] and _count(store) == 10
    assert sorted(woken) == sorted(e.id for e in store.events.recent(50))  # each new event once
    assert list((tmp_path / "spool").iterdir()) == []  # committed: nothing left spooled


def test_a_writer_commits_within_its_window_and_can_be_used_again_after_close(tmp_path, store) -> None:
    writer = EventWriter(store, tmp_path / "spool", window_s=0.05)

    async def one(i: int) -> None:
        _accept(writer, i)
        deadline = time.monotonic() + 5
        while _count(store) <= i and time.monotonic() < deadline:  # nobody flushes: the window passes
            await asyncio.sleep(0.01)

    asyncio.run(one(0))
    writer.close()
    asyncio.run(one(1))
    writer.close()
    assert _count(store) == 2


KILLED_WRITER = """
import asyncio, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
sys.path.insert(0, {tests!r})
from test_ingest import _accept
from bot.intake.ingest import EventWriter
from state import open_store, sqlite_url

store = open_store(sqlite_url({data!r}))
writer = EventWriter(store, Path({data!r}) / "spool", window_s=3600)

async def main():
    for i in range(7):
        _accept(writer, i)
    print("answered", flush=True)
    time.sleep(3600)

asyncio.run(main())
"""


def test_a_bot_killed_after_answering_loses_nothing(tmp_path, store) -> None:
    script = KILLED_WRITER.format(root=str(ROOT), tests=str(Path(__file__).parent), data=str(tmp_path))
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "answered"
        assert _count(store) == 0  # answered, not committed
        beside = EventWriter(store, tmp_path / "spool", window_s=0.0)
        assert beside.replayed == 0  # the live writer holds its segment: not replayed
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    killed = datetime.now(UTC)

    restarted = EventWriter(store, tmp_path / "spool", window_s=0.0)

    assert restarted.replayed == 7 and _count(store) == 7
    assert all(e.received_at < killed for e in store.events.recent())  # when they came: a catch-up's start
    assert list((tmp_path / "spool").iterdir()) == []
    restarted.close()


def test_a_line_cut_short_is_skipped_and_the_rest_replayed(tmp_path, store, caplog) -> None:
    event = event_from_payload(_payload(1), "1" * 64)
    new = NewEvent(event.delivery_id, event.scope, event.action, event.payload, event.dedup_key, event.repo)
    new = dataclasses.replace(new, received_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    folder = tmp_path / "spool"
    folder.mkdir()
    whole = spool.line(new)
    (folder / "1-1.jsonl").write_bytes(whole + whole[: len(whole) // 2])

    assert spool.replay(folder, store) == 1
    assert "line 2 is not a whole event" in caplog.text
    [stored] = store.events.recent()
    assert (stored.delivery_id, stored.received_at) == (new.delivery_id, new.received_at)


def test_a_locked_database_keeps_the_answers_coming_and_gets_the_events_once_released(
    tmp_path, store
) -> None:
    writer = EventWriter(store, tmp_path / "spool", window_s=0.0, max_backlog=5)
    blocker = sqlite3.connect(tmp_path / "quantbot.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another connection (the dispatcher, say) holds the write lock

    async def while_locked() -> float:
        started = time.monotonic()
        for i in range(5):
            _accept(writer, i)
        answered = time.monotonic() - started
        with pytest.raises(Backlogged):  # too many wait for the database: refused, the caller answers 503
            _accept(writer, 5)
        return answered

    try:
        answered = asyncio.run(while_locked())
        assert not writer.flush(timeout=0.3) and _count(store) == 0
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    assert answered < 0.5
    assert writer.flush() and _count(store) == 5
    writer.close()


def test_events_the_database_never_took_stay_spooled_for_the_next_start(tmp_path, store, monkeypatch) -> None:
    def down(self: EventAppender, events):  # type: ignore[no-untyped-def]
        raise OperationalError("INSERT", None, ConnectionError("the database does not answer"))

    with monkeypatch.context() as patched:
        patched.setattr(EventAppender, "append", down)
        writer = EventWriter(store, tmp_path / "spool", window_s=0.0)

        async def accept() -> None:
            _accept(writer, 1)

        asyncio.run(accept())
        assert not writer.flush(timeout=0.2)
        writer.close()
    assert _count(store) == 0

    assert EventWriter(store, tmp_path / "spool", window_s=0.0).replayed == 1 and _count(store) == 1
