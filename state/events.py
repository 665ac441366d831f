"""Events: stored before the webhook is acknowledged, processed after, each exactly once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update

from state.db import Database, insert_ignoring_conflict
from state.errors import GuardFailed, NotFound
from state.models import EventRecord, utcnow

PENDING = "pending"
IGNORED = "ignored"


@dataclass(frozen=True)
class NewEvent:
    """An event to store: what was delivered, and the key that makes a duplicate a duplicate."""

    delivery_id: str
    scope: str
    action: str
    payload: dict[str, Any]
    dedup_key: str
    repo: str | None = None
    ignored: str | None = None  # why the bot does not act on it: stored already processed, with this reason


@dataclass(frozen=True)
class Recorded:
    """What `EventStore.record` did: the event's id, and whether this call created it."""

    event_id: int
    created: bool


class EventStore:
    """The `events` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(
        self,
        *,
        delivery_id: str,
        scope: str,
        action: str,
        payload: dict[str, Any],
        dedup_key: str,
        repo: str | None = None,
    ) -> Recorded:
        """Store an event unless one with `dedup_key` exists; either way, return the stored event's id."""
        return self.record_many([NewEvent(delivery_id, scope, action, payload, dedup_key, repo)])[0]

    def record_many(self, events: Sequence[NewEvent]) -> list[Recorded]:
        """Store several events in one transaction, so one commit (one fsync) covers them all.

        Duplicates, of stored events or within `events`, are not stored again; their `Recorded` carries the
        id of the event they duplicate. Plain SQL statements, not ORM units of work: this is the hot path
        of the webhook endpoint.
        """
        table = EventRecord.__table__
        insert = insert_ignoring_conflict(self._db.dialect, table, "dedup_key").returning(table.c.id)
        existing = select(table.c.id).where(table.c.dedup_key == bindparam("key"))
        now = utcnow()
        results: list[Recorded] = []
        with self._db.write_connection() as connection:
            for event in events:
                row = _row(event, now)
                new_id = connection.execute(insert, row).scalar_one_or_none()
                if new_id is not None:
                    results.append(Recorded(new_id, True))
                else:
                    results.append(
                        Recorded(connection.execute(existing, {"key": event.dedup_key}).scalar_one(), False)
                    )
        return results

    def latest_received_at(self) -> datetime | None:
        """When the newest stored event arrived (None: none yet): where a catch-up after downtime starts."""
        with self._db.read() as s:
            return s.execute(select(func.max(EventRecord.received_at))).scalar_one_or_none()

    def get(self, event_id: int) -> EventRecord:
        """One event; NotFound if there is none with that id."""
        with self._db.read() as s:
            event = s.get(EventRecord, event_id)
        if event is None:
            raise NotFound("event", event_id)
        return event

    def pending(self, limit: int = 100) -> list[EventRecord]:
        """Events stored but not yet processed, oldest first: what a restarted dispatcher picks up."""
        with self._db.read() as s:
            query = select(EventRecord).where(EventRecord.processed_at.is_(None)).order_by(EventRecord.id)
            return list(s.scalars(query.limit(limit)))

    def mark_processed(self, event_id: int, outcome: str, error: str | None = None) -> None:
        """Record how an event was handled (`handled`, `ignored`, `refused`, `failed`...); only once."""
        stmt = (
            update(EventRecord)
            .where(EventRecord.id == event_id, EventRecord.processed_at.is_(None))
            .values(processed_at=utcnow(), outcome=outcome, error=error)
            .returning(EventRecord.id)
        )
        with self._db.write() as s:
            if s.execute(stmt).scalar_one_or_none() is not None:
                return
            current = s.get(EventRecord, event_id)
        if current is None:
            raise NotFound("event", event_id)
        raise GuardFailed("event", event_id, {PENDING}, f"processed ({current.outcome})")

    def recent(
        self,
        limit: int = 20,
        outcomes: list[str] | None = None,
        *,
        scope: str | None = None,
        action: str | None = None,
    ) -> list[EventRecord]:
        """The newest events, optionally only those with one of `outcomes` (and of one scope and action)."""
        with self._db.read() as s:
            query = select(EventRecord).order_by(EventRecord.id.desc()).limit(limit)
            if outcomes is not None:
                query = query.where(EventRecord.outcome.in_(outcomes))
            if scope is not None:
                query = query.where(EventRecord.scope == scope)
            if action is not None:
                query = query.where(EventRecord.action == action)
            return list(s.scalars(query))

    def counts(self) -> dict[tuple[str, str], int]:
        """How many events per (scope, outcome); unprocessed ones count under outcome `pending`."""
        outcome = func.coalesce(EventRecord.outcome, PENDING)
        with self._db.read() as s:
            rows = s.execute(
                select(EventRecord.scope, outcome, func.count()).group_by(EventRecord.scope, outcome)
            ).all()
        return {(scope, out): n for scope, out, n in rows}


def _row(event: NewEvent, now: datetime) -> dict[str, Any]:
    """The columns of a new event; shallow (asdict() would copy the payload). An ignored one is processed."""
    row = {
        "delivery_id": event.delivery_id,
        "scope": event.scope,
        "action": event.action,
        "payload": event.payload,
        "dedup_key": event.dedup_key,
        "repo": event.repo,
        "received_at": now,
        "processed_at": None,
        "outcome": None,
        "error": None,
    }
    if event.ignored is not None:
        row |= {"processed_at": now, "outcome": IGNORED, "error": event.ignored}
    return row
