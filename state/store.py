"""The store: one database, five record kinds, each behind its own small API.

    store = open_store("sqlite:////var/lib/quantbot/quantbot.db")   # migrates to the newest schema
    store.events.record(...)      store.events.pending()      store.events.mark_processed(...)
    store.jobs.enqueue(key, spec, repo=...)   store.jobs.claim(worker, lease_s)
    store.jobs.transition(job_id, {JobStatus.RUNNING}, JobStatus.BUILT, owner=worker, manifest=...)
    store.jobs.heartbeat(job_id, worker, lease_s, progress=0.4)   store.jobs.requeue_expired()
    store.releases.record(...)    store.commands.record(...)   store.watches.add(...)

Every method is its own transaction and returns detached rows (plain attribute access, no lazy loading);
all are safe to call from several threads, and from several processes on the same database.
"""

from __future__ import annotations

from sqlalchemy import text

from state.commands import CommandStore
from state.db import Database, make_engine
from state.events import EventStore
from state.jobs import JobStore
from state.migrate import migrate
from state.releases import ReleaseStore
from state.watches import WatchStore


class Store:
    """Access to every table of one database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.events = EventStore(db)
        self.jobs = JobStore(db)
        self.releases = ReleaseStore(db)
        self.commands = CommandStore(db)
        self.watches = WatchStore(db)

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return self.db.dialect

    def ping(self) -> None:
        """Raise (an SQLAlchemyError) unless the database answers a trivial query."""
        with self.db.read() as s:
            s.execute(text("SELECT 1"))

    def close(self) -> None:
        """Release the database connections."""
        self.db.dispose()


def open_store(url: str, *, upgrade: bool = True, sqlite_synchronous: str = "FULL") -> Store:
    """Open the database at `url` (`sqlite:///path` or `postgresql://…`), migrated first unless told not to.

    `sqlite_synchronous=NORMAL` trades the last commits before a power cut (never a crash) for less fsync.
    """
    engine = make_engine(url, sqlite_synchronous=sqlite_synchronous)
    if upgrade:
        migrate(engine)
    return Store(Database(engine))
