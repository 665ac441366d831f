"""The store: one database, five record kinds, each behind its own small API.

    store = open_store("sqlite:////var/lib/quantbot/quantbot.db")   # migrates to the newest schema
    store.events.record(...)      store.events.pending()      store.events.mark_processed(...)
    store.jobs.enqueue(key, spec, repo=...)   store.jobs.heartbeat(job_id, worker, lease_s, progress=0.4)
    store.lifecycle.claim_build(worker, lease_s)   store.lifecycle.built(job_id, worker, manifest)
    store.lifecycle.cancel(job_id)   store.lifecycle.requeue_expired()   (every move of a job's status)
    store.changes.listen(callback)   (told of every job move, progress and release change, in-process)
    store.releases.record(...)    store.commands.record(...)   store.watches.add(...)
    store.move_repo(old, new, rekey)   (a renamed repo: everything kept under its name follows)
    store.tasks.add(job_id, task_id, kind=..., queue=...)   (remote tasks of a job, and who ran them)
    store.dashboards.save(upstream, num, text)   (the discussion per watched upstream saying where it stands)

Every method is its own transaction and returns detached rows (plain attribute access, no lazy loading);
all are safe to call from several threads, and from several processes on the same database.
"""

from __future__ import annotations

from sqlalchemy import text

from state.changes import Changes
from state.commands import CommandStore
from state.dashboards import DashboardStore
from state.db import Database, make_engine
from state.events import EventStore
from state.jobs import JobStore
from state.lifecycle import JobLifecycle
from state.migrate import migrate
from state.moves import Moved, Rekey, move_repo
from state.releases import ReleaseStore
from state.tasks import TaskStore
from state.watches import WatchStore


class Store:
    """Access to every table of one database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.changes = Changes()
        self.events = EventStore(db)
        self.jobs = JobStore(db, self.changes)
        self.lifecycle = JobLifecycle(self.jobs)
        self.releases = ReleaseStore(db, self.changes)
        self.commands = CommandStore(db)
        self.watches = WatchStore(db)
        self.tasks = TaskStore(db)
        self.dashboards = DashboardStore(db)

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return self.db.dialect

    def move_repo(self, old: str, new: str, rekey: Rekey) -> Moved:
        """A repo was renamed on the Hub: its watches, jobs, releases and commands follow (state.moves)."""
        return move_repo(self.db, old, new, rekey)

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
