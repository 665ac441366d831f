"""Events: stored before the webhook is acknowledged, processed after, each exactly once."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Dialect, FromClause, bindparam, func, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql.compiler import SQLCompiler

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
    text: str | None = None  # `payload` as delivered, JSON text: stored as it is rather than serialised again
    received_at: datetime | None = None  # when it arrived, if before it is stored (a spooled delivery)


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
        id of the event they duplicate.
        """
        appender = self.appender()
        try:
            return appender.append(events)
        finally:
            appender.close()

    def appender(self) -> EventAppender:
        """A connection of its own that stores batches of events: for one thread (the webhook's writer)."""
        return EventAppender(self._db)

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

    def former_names(self, repo: str) -> list[str]:
        """The names `repo` had before, as the Hub's `move` events told (a rename of a rename followed back,
        newest first): what a release of it made under an older name still names as its base model."""
        with self._db.read() as s:
            moves = s.execute(
                select(EventRecord.repo, EventRecord.payload).where(
                    EventRecord.scope == "repo", EventRecord.action == "move"
                )
            ).all()
        before: dict[str, list[str]] = {}
        for old, payload in moves:
            new = (payload.get("movedTo") or {}).get("name")
            if old and isinstance(new, str):
                before.setdefault(new.lower(), []).append(old)
        names: list[str] = []
        pending = [repo]
        while pending:
            for old in before.get(pending.pop().lower(), []):
                if old.lower() != repo.lower() and old.lower() not in {n.lower() for n in names}:
                    names.append(old)
                    pending.append(old)
        return names

    def counts(self) -> dict[tuple[str, str], int]:
        """How many events per (scope, outcome); unprocessed ones count under outcome `pending`."""
        outcome = func.coalesce(EventRecord.outcome, PENDING)
        with self._db.read() as s:
            rows = s.execute(
                select(EventRecord.scope, outcome, func.count()).group_by(EventRecord.scope, outcome)
            ).all()
        return {(scope, out): n for scope, out, n in rows}


class EventAppender:
    """Stores batches of new events on one connection, held open, with statements compiled once.

    This is the webhook's write path, run for every batch of deliveries: SQLAlchemy's per-statement and
    per-transaction machinery (pool checkout and reset, execution contexts, the begin event) cost several
    times the insert and its commit, so the statements are compiled for the dialect once and run on the
    driver's cursor; per event only what differs is converted (the payload's JSON text is the delivery's own
    when it has one, the timestamps are converted once a batch), and on SQLite, whose connection is in
    autocommit mode, a batch of one event is one statement and so a transaction of its own. Driver errors come
    out as SQLAlchemy's `DBAPIError`s, as from any other store call. Not thread-safe: one thread uses it.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._connection: PoolProxiedConnection | None = None
        self._cursor: Any = None
        dialect = db.engine.dialect
        self._dbapi_error: type[Exception] = dialect.loaded_dbapi.Error
        table = EventRecord.__table__
        insert = insert_ignoring_conflict(db.dialect, table, "dedup_key").returning(table.c.id)
        self._insert = _Prepared(
            insert.compile(dialect=dialect, column_keys=[c.key for c in table.c if c.key != "id"]),
            table,
            dialect,
        )
        existing = select(table.c.id).where(table.c.dedup_key == bindparam("dedup_key"))
        self._existing = _Prepared(existing.compile(dialect=dialect), table, dialect)

    def append(self, events: Sequence[NewEvent]) -> list[Recorded]:
        """Store `events` in one transaction (see `EventStore.record_many`)."""
        connection, cursor = self._open()
        try:
            if self._db.dialect == "sqlite" and len(events) > 1:  # several statements: write lock first
                cursor.execute("BEGIN IMMEDIATE")
            now = self._insert.convert("received_at", utcnow())
            results = [self._one(cursor, event, now) for event in events]
            connection.commit()
            return results
        except self._dbapi_error as e:
            if getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY:  # nothing was written: keep it
                connection.rollback()
            else:
                self._discard()
            raise DBAPIError.instance(self._insert.sql, None, e, self._dbapi_error) from e
        except BaseException:
            self._discard()
            raise

    def close(self) -> None:
        """Give the connection back to the pool."""
        connection, cursor = self._connection, self._cursor
        self._connection = self._cursor = None
        if connection is not None:
            with contextlib.suppress(Exception):
                cursor.close()
            connection.close()

    def _open(self) -> tuple[PoolProxiedConnection, Any]:
        if self._connection is None:
            self._connection = self._db.engine.raw_connection()
            self._cursor = self._connection.cursor()
        return self._connection, self._cursor

    def _one(self, cursor: Any, event: NewEvent, now: Any) -> Recorded:
        cursor.execute(self._insert.sql, self._insert.params(self._row(event, now)))
        row = cursor.fetchone()
        if row is not None:
            return Recorded(row[0], True)
        cursor.execute(self._existing.sql, self._existing.params({"dedup_key": event.dedup_key}))
        return Recorded(cursor.fetchone()[0], False)

    def _row(self, event: NewEvent, now: Any) -> dict[str, Any]:
        """The driver's values of a new event's columns (`now` converted already: the arrival of an event
        that does not carry its own). An ignored one is processed as it arrives."""
        text = event.text if event.text is not None else self._insert.convert("payload", event.payload)
        ignored = event.ignored is not None
        arrived = now if event.received_at is None else self._insert.convert("received_at", event.received_at)
        return {
            "delivery_id": event.delivery_id,
            "scope": event.scope,
            "action": event.action,
            "payload": text,
            "dedup_key": event.dedup_key,
            "repo": event.repo,
            "received_at": arrived,
            "processed_at": arrived if ignored else None,
            "outcome": IGNORED if ignored else None,
            "error": event.ignored,
        }

    def _discard(self) -> None:
        """After a failure: roll back and drop the connection (the next batch opens a fresh one)."""
        connection, cursor = self._connection, self._cursor
        self._connection = self._cursor = None
        if connection is not None:
            with contextlib.suppress(Exception):
                cursor.close()
            with contextlib.suppress(Exception):
                connection.rollback()
            connection.invalidate()


class _Prepared:
    """A statement as the driver takes it: its SQL, its parameters' order, and its columns' conversions."""

    def __init__(self, compiled: SQLCompiler, table: FromClause, dialect: Dialect) -> None:
        self.sql = compiled.string
        self.positional = compiled.positional
        self.names = tuple(compiled.positiontup or ()) if compiled.positional else tuple(compiled.params)
        self.processors: dict[str, Callable[[Any], Any]] = {}
        for name in self.names:
            processor = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self.processors[name] = processor

    def convert(self, name: str, value: Any) -> Any:
        """`value` as the driver takes it for column `name` (through the column's bind processor)."""
        processor = self.processors.get(name)
        return value if processor is None or value is None else processor(value)

    def params(self, values: dict[str, Any]) -> list[Any] | dict[str, Any]:
        """The driver's parameters from `values`, converted already."""
        return [values[name] for name in self.names] if self.positional else values
