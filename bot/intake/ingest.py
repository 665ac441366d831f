"""Write-behind for incoming events: a delivery is spooled and answered at once, and committed with the
others of its moment in one transaction.

A commit costs an fsync (SQLite with synchronous=FULL, or PostgreSQL), and on a small machine an fsync and
the database's write path cost about as much CPU as the whole of a bare endpoint's request, the same for
one event as for a hundred. So the acknowledgement does not wait for one: it appends the event to the spool
(`bot.intake.spool`, one `write`: the page cache keeps it through a kill -9 of the bot) and hands it to the
writer thread, which gathers what arrives within `window_s` and stores it in one transaction, deduplicating
on each event's key, then deletes the spool segment that held it and wakes the dispatcher (`on_event`) for
each event it created. A restarted bot commits what a killed one spooled but had not committed before it
serves (`spool.replay`).

What that gives up: after a power cut (not a crash of the bot), the deliveries of the last `window_s` and
what the page cache held may be gone; the poller and the catch-up find those pushes and commands again on
the Hub. A database that stops answering holds the writer (it tries again, backing off) while the spool
keeps taking deliveries, up to `max_backlog` events; beyond that, and when the spool's disk refuses a
write, the acknowledgement answers 503 so that the Hub's delivery is not lost.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bot.intake.spool import Segment, replay
from bot.intake.webhooks import Event
from state import EventAppender, NewEvent, Store

log = logging.getLogger(__name__)

MAX_BACKLOG = 10_000
RETRY_S = (0.5, 1.0, 2.0, 5.0)  # waits between tries while the database does not answer

OnEvent = Callable[[int, Event], object]
"""Called with a new event's id and its parse once it is committed (the payload is validated once, on
arrival, and handed on). Runs on the event loop that accepted it: it must only signal (put on a queue, set an
`asyncio.Event` or `threading.Event`), never do the work itself."""

_Item = tuple[NewEvent, Event, asyncio.AbstractEventLoop]


class Backlogged(Exception):
    """The database has not taken the events for so long that `max_backlog` of them wait: refuse more."""


class EventWriter:
    """Spools events as they are accepted and commits them in batches on a thread of its own."""

    def __init__(
        self,
        store: Store,
        spool: Path,
        *,
        window_s: float,
        on_event: OnEvent | None = None,
        max_backlog: int = MAX_BACKLOG,
    ) -> None:
        self._store = store
        self._spool = spool
        self._window_s = window_s
        self._on_event = on_event
        self._max_backlog = max_backlog
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._lock = threading.Lock()  # the spool's segment and the queue change together
        self._segment: Segment | None = None
        self._thread: threading.Thread | None = None
        self._now = threading.Event()  # commit without waiting out the window (flush, close)
        self._settled = threading.Condition(threading.Lock())
        self._waiting = 0  # accepted, not yet committed
        self.replayed = replay(spool, store)  # what a killed bot acknowledged: committed before serving

    def accept(self, event: Event) -> None:
        """Spool `event` and queue it for the next commit (on the running event loop, which `on_event` is
        called on). `Backlogged`, or OSError from the spool: not taken, the caller answers 503."""
        if self._waiting >= self._max_backlog:
            raise Backlogged(f"{self._waiting} events wait for the database")
        loop = asyncio.get_running_loop()
        new = NewEvent(
            event.delivery_id,
            event.scope,
            event.action,
            event.payload,
            event.dedup_key,
            event.repo,
            event.ignored,
            event.text,
            datetime.now(UTC),
        )
        with self._lock:
            if self._segment is None:
                self._segment = Segment(self._spool)
            self._segment.append(new)
            self._queue.put((new, event, loop))
            with self._settled:
                self._waiting += 1
        if self._thread is None:
            self._start()

    def flush(self, timeout: float = 30.0) -> bool:
        """Commit what was accepted so far now; True once it is (False: the database did not take it)."""
        self._now.set()
        with self._settled:
            return self._settled.wait_for(lambda: self._waiting == 0, timeout)

    def close(self) -> None:
        """Commit what is queued, then stop the thread (a later `accept` starts a new one); what the
        database does not take stays spooled, for the next start."""
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._queue.put(None)
        if thread is not None:
            self._now.set()
            thread.join()

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
        batch: list[_Item] = []
        segments: list[Segment] = []
        stopping, failures = False, 0
        while True:
            if not batch:
                item = self._queue.get()
                if item is None:
                    return
                batch.append(item)
            self._now.wait(self._window_s if not failures else RETRY_S[min(failures, len(RETRY_S)) - 1])
            self._now.clear()
            with self._lock:  # every event of the segment is in the queue: take them all
                if self._segment is not None:
                    segments.append(self._segment)
                    self._segment = None
                stopping |= _take(self._queue, batch)
            if self._commit(appender, batch):
                failures = 0
                for segment in segments:
                    segment.remove()
                batch, segments = [], []
            else:
                failures += 1
            if stopping:
                if batch:
                    log.error("event writer: %d events stay spooled for the next start", len(batch))
                    self._settle(len(batch))
                for segment in segments:
                    segment.release()
                return

    def _commit(self, appender: EventAppender, batch: list[_Item]) -> bool:
        try:
            recorded = appender.append([new for new, _, _ in batch])
        except Exception as e:  # the database is down or locked: the events wait, spooled
            log.warning("event writer: %d events not committed yet: %s", len(batch), type(e).__name__)
            return False
        if self._on_event is not None:
            for (_, event, loop), done in zip(batch, recorded, strict=True):
                if done.created and event.handled:
                    _wake(loop, self._on_event, done.event_id, event)
        self._settle(len(batch))
        return True

    def _settle(self, count: int) -> None:
        """`count` events are off the writer's hands: committed, or left to the next start's replay."""
        with self._settled:
            self._waiting -= count
            self._settled.notify_all()


def _take(waiting: queue.SimpleQueue[_Item | None], batch: list[_Item]) -> bool:
    """Move what is queued into `batch`; True when the stop marker was among it."""
    stop = False
    while True:
        try:
            item = waiting.get_nowait()
        except queue.Empty:
            return stop
        if item is None:
            stop = True
        else:
            batch.append(item)


def _wake(loop: asyncio.AbstractEventLoop, on_event: OnEvent, event_id: int, event: Event) -> None:
    try:
        loop.call_soon_threadsafe(_notify, on_event, event_id, event)
    except RuntimeError:  # that event loop is closed: the dispatcher's sweep finds the event
        log.debug("event writer: loop closed before its wake-up")


def _notify(on_event: OnEvent, event_id: int, event: Event) -> None:
    try:
        on_event(event_id, event)
    except Exception:  # the event is stored; the dispatcher's sweep will find it
        log.exception("on_event(%s) failed", event_id)
