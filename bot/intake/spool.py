"""The acknowledged deliveries not yet committed, in files that outlive the process that wrote them.

An acknowledgement appends its event to the spool (one `write`, no fsync: the page cache keeps it through a
kill -9 of the bot) before it answers; the writer commits the events in batches (`bot.intake.ingest`) and
then deletes the segment that held them. A segment is a file of JSON lines, locked (`flock`) by the process
that writes it for as long as it may hold uncommitted events. On start, `replay` commits every segment no
process holds any more (a bot killed between an answer and its commit), then deletes it: the events are
deduplicated on their key as they are stored, so a segment whose events were already committed costs
nothing but the read. A line cut short by a power cut is skipped (that event, and the moments before it,
are what the poller and the catch-up find again on the Hub).
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import logging
import os
from datetime import datetime
from pathlib import Path

from state import NewEvent, Store

log = logging.getLogger(__name__)

SUFFIX = ".jsonl"
BATCH = 256
_SEQUENCE = itertools.count(1)


class Segment:
    """One spool file, open for appending and locked by this process until `remove`."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{os.getpid()}-{next(_SEQUENCE)}{SUFFIX}"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def append(self, event: NewEvent) -> None:
        """One event, one line, one `write` (OSError: the disk refused it)."""
        os.write(self._fd, line(event))

    def remove(self) -> None:
        """Delete the file (its events are committed) and let go of it."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._fd)

    def release(self) -> None:
        """Let go of the file, its events not committed: the next start's `replay` commits them."""
        os.close(self._fd)


def line(event: NewEvent) -> bytes:
    """An event as one line of JSON; the payload as its JSON text (the delivery's own where it may be)."""
    text = event.text if event.text is not None else json.dumps(event.payload)
    received = event.received_at.isoformat() if event.received_at is not None else None
    fields = [event.delivery_id, event.scope, event.action, event.dedup_key, event.repo, event.ignored]
    return json.dumps([*fields, received, text]).encode() + b"\n"


def parse(raw: bytes) -> NewEvent:
    """The event of one line (ValueError: not a line `line` wrote whole)."""
    delivery_id, scope, action, dedup_key, repo, ignored, received, text = json.loads(raw)
    at = datetime.fromisoformat(received) if received is not None else None
    return NewEvent(delivery_id, scope, action, json.loads(text), dedup_key, repo, ignored, text, at)


def replay(folder: Path, store: Store) -> int:
    """Commit the events of every segment no live process holds, then delete it; returns how many were new."""
    if not folder.is_dir():
        return 0
    new = 0
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:  # its writer committed and removed it meanwhile
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # a live writer's
                continue
            events = _events(path)
            for start in range(0, len(events), BATCH):
                new += sum(r.created for r in store.events.record_many(events[start : start + BATCH]))
            path.unlink(missing_ok=True)
            log.warning("spool %s: %d acknowledged events committed after a restart", path.name, len(events))
        finally:
            os.close(fd)
    return new


def _events(path: Path) -> list[NewEvent]:
    events = []
    for number, raw in enumerate(path.read_bytes().splitlines(), 1):
        try:
            events.append(parse(raw))
        except (ValueError, TypeError):
            log.error("spool %s: line %d is not a whole event; skipped", path.name, number)
    return events
