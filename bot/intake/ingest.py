"""Group commit for incoming events: one thread stores every delivery that is waiting in one transaction.

A commit costs an fsync (SQLite with synchronous=FULL, or PostgreSQL), and an fsync costs the same for one
event as for twenty. Requests hand their event to the writer and await the result; the writer takes all that
queued up while the previous commit ran, stores them together, and answers each. Under light load that is
one event per commit; under a burst the latency stays near one commit instead of growing with the queue.
One writer also means the process never contends with itself for SQLite's write lock.

Handing an event to that thread costs more CPU than storing it, though: two thread wake-ups per request
(the writer's, then the event loop's for the answer), each on cold caches, where the request alone needs
one. So on SQLite, where a commit is a local write and an fsync, an event that arrives alone is committed
on the event loop itself, as the request is handled: when the writer is idle, nothing is queued, the last
such commit took under `LOOP_SHARE` of the time since the previous event (the loop would not spend more
than that share of its time committing), and no other connection holds the write lock (the attempt does not
wait for it). Anything else goes to the writer: a burst, a slow disk, a busy database, any failure of the
attempt (the writer tries again and reports what is wrong), and PostgreSQL, whose commit is a network round
trip that should not hold the loop.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Sequence

from state import EventAppender, NewEvent, Recorded, Store

log = logging.getLogger(__name__)

MAX_BATCH = 256
LOOP_SHARE = 0.5

_Item = tuple[NewEvent, asyncio.Future[Recorded], asyncio.AbstractEventLoop]


class EventWriter:
    """Stores events for async callers: a lone one on the caller's thread, the rest in batches on a thread of
    its own."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._committing = threading.Lock()  # held by whichever thread commits
        self._direct = store.dialect == "sqlite"
        self._direct_appender: EventAppender | None = None  # the event loop's, never waiting for a lock
        self._last_arrival = -float("inf")  # perf_counter seconds
        self._direct_seconds = 0.0  # how long the last commit on the event loop took

    async def record(self, event: NewEvent) -> Recorded:
        """Store `event` (or find the event it duplicates); returns once it is committed."""
        recorded = self._record_here(event)
        if recorded is not None:
            return recorded
        self._start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Recorded] = loop.create_future()
        self._queue.put((event, future, loop))
        return await future

    def close(self) -> None:
        """Store what is queued, then stop the thread (a later `record` starts a new one)."""
        with self._lock:
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join()
                self._thread = None
        with self._committing:
            if self._direct_appender is not None:
                self._direct_appender.close()
                self._direct_appender = None

    def _record_here(self, event: NewEvent) -> Recorded | None:
        """`event` stored on the caller's thread, if it arrived alone (see the module's docstring); None:
        the writer's to store."""
        started = time.perf_counter()
        gap, self._last_arrival = started - self._last_arrival, started
        if not self._direct or self._direct_seconds > LOOP_SHARE * gap or not self._queue.empty():
            return None
        if not self._committing.acquire(blocking=False):
            return None
        try:
            if self._direct_appender is None:
                self._direct_appender = self._store.events.appender(wait=False)
            return self._direct_appender.append([event])[0]
        except Exception as e:  # a locked database above all; the writer waits, retries and answers
            log.debug("event stored by the writer: %s", type(e).__name__)
            return None
        finally:
            self._committing.release()
            self._direct_seconds = time.perf_counter() - started

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="quantbot-event-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        appender = self._store.events.appender()  # one connection for the thread's life
        try:
            self._drain(appender)
        finally:
            appender.close()

    def _drain(self, appender: EventAppender) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._commit(appender, batch)

    def _commit(self, appender: EventAppender, batch: list[_Item]) -> None:
        outcomes: Sequence[Recorded | BaseException]
        try:
            with self._committing:
                outcomes = appender.append([event for event, _, _ in batch])
        except Exception as e:  # handed to every waiting request, which answers 503 (or 500)
            outcomes = [e] * len(batch)
        for (_, future, loop), outcome in zip(batch, outcomes, strict=True):
            try:
                loop.call_soon_threadsafe(_settle, future, outcome)
            except RuntimeError:  # that request's event loop is closed: nobody is waiting any more
                log.debug("event writer: loop closed before its answer")


def _settle(future: asyncio.Future[Recorded], outcome: Recorded | BaseException) -> None:
    if future.done():  # the client went away and the request was cancelled
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
