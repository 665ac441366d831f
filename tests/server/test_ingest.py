"""The event writer: many waiting requests, few commits, each request answered with its own event."""

from __future__ import annotations

import asyncio

from bot.intake.ingest import EventWriter
from state import EventAppender, NewEvent, open_store, sqlite_url


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
