"""The event writer: a lone event committed where it arrives, a burst in few commits, each request answered
with its own event, and a locked database never holding the event loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

from bot.intake.ingest import EventWriter
from state import EventAppender, NewEvent, open_store, sqlite_url
from state.db import BUSY_TIMEOUT_MS


def _event(i: int) -> NewEvent:
    return NewEvent(f"d{i}", "repo.content", "update", {"i": i}, f"key-{i % 10}", "o/m")


def test_a_burst_is_stored_in_few_commits_and_each_caller_gets_its_answer(tmp_path, monkeypatch) -> None:
    store = open_store(sqlite_url(tmp_path))
    commits: list[int] = []  # one transaction, one commit, per call of `append`
    append = EventAppender.append

    def counted(self: EventAppender, events):  # type: ignore[no-untyped-def]
        commits.append(len(events))
        return append(self, events)

    monkeypatch.setattr(EventAppender, "append", counted)
    writer = EventWriter(store)

    async def burst():
        return await asyncio.gather(*(writer.record(_event(i)) for i in range(50)))

    results = asyncio.run(burst())
    writer.close()

    assert [r.created for r in results[:10]] == [True] * 10 and not any(r.created for r in results[10:])
    assert all(results[i].event_id == results[i % 10].event_id for i in range(50))
    assert sum(commits) == 50 and len(commits) < 50  # batched: far fewer commits than events
    store.close()


def test_writer_can_be_used_again_after_close(tmp_path) -> None:
    store = open_store(sqlite_url(tmp_path))
    writer = EventWriter(store)
    first = asyncio.run(writer.record(_event(1)))
    writer.close()
    second = asyncio.run(writer.record(_event(2)))
    writer.close()

    assert first.created and second.created and first.event_id != second.event_id
    store.close()


def test_events_that_arrive_alone_are_committed_on_the_event_loop(tmp_path, monkeypatch) -> None:
    """No thread hop for the usual delivery: the one that finds the writer idle."""
    store = open_store(sqlite_url(tmp_path))
    threads: list[threading.Thread] = []
    append = EventAppender.append

    def traced(self: EventAppender, events):  # type: ignore[no-untyped-def]
        threads.append(threading.current_thread())
        return append(self, events)

    monkeypatch.setattr(EventAppender, "append", traced)
    writer = EventWriter(store)

    async def spaced() -> list[bool]:
        created = []
        for i in range(3):
            created.append((await writer.record(_event(i))).created)
            await asyncio.sleep(0.05)
        return created

    assert asyncio.run(spaced()) == [True, True, True]
    writer.close()
    assert threads == [threading.main_thread()] * 3
    assert sum(store.events.counts().values()) == 3
    store.close()


def test_a_locked_database_keeps_the_event_loop_free_and_the_event_is_stored_once_it_is_released(
    tmp_path,
) -> None:
    store = open_store(sqlite_url(tmp_path))
    writer = EventWriter(store)
    blocker = sqlite3.connect(tmp_path / "quantbot.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another connection (the dispatcher, say) holds the write lock

    async def while_locked() -> tuple[int, bool, bool]:
        task = asyncio.create_task(writer.record(_event(1)))
        ticks = 0
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:  # the loop keeps turning meanwhile
            await asyncio.sleep(0.01)
            ticks += 1
        waiting = not task.done()
        blocker.execute("COMMIT")
        return ticks, waiting, (await task).created

    ticks, waiting, created = asyncio.run(while_locked())
    writer.close()
    blocker.close()
    assert waiting and ticks >= 10 and created
    assert sum(store.events.counts().values()) == 1
    store.close()


def test_the_event_loops_connection_goes_back_to_the_pool_waiting_for_locks_as_every_other(tmp_path) -> None:
    store = open_store(sqlite_url(tmp_path))
    writer = EventWriter(store)
    assert asyncio.run(
        writer.record(_event(1))
    ).created  # committed on the loop, by a connection that never waits
    writer.close()

    pool = store.db.engine.pool
    held = [store.db.engine.raw_connection() for _ in range(pool.checkedin())]  # every pooled one, ours too
    timeouts = [c.cursor().execute("PRAGMA busy_timeout").fetchone()[0] for c in held]
    for connection in held:
        connection.close()
    assert timeouts and set(timeouts) == {BUSY_TIMEOUT_MS}
    store.close()
