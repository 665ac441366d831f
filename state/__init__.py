"""quantbot's persistence: SQLAlchemy models, a store with guarded state transitions, Alembic migrations.

Imports nothing of the rest of the project. The public surface is below; `state.store` shows the API in use.
"""

from state.changes import BuildChange, Changes
from state.db import sqlite_url
from state.dedup import comment_key, delivery_key, revision_key
from state.errors import GuardFailed, IllegalTransition, LeaseLost, NotFound, StateError
from state.events import EventAppender, NewEvent, Recorded
from state.jobs import Histogram
from state.lifecycle import CANCELLABLE, RETRYABLE, JobLifecycle
from state.migrate import migrate
from state.models import (
    ACTIVE_JOB_STATUSES,
    JOB_TRANSITIONS,
    TERMINAL_JOB_STATUSES,
    ApprovalMode,
    Command,
    CommandStatus,
    Dashboard,
    EventRecord,
    Job,
    JobEvent,
    JobStatus,
    JobTask,
    Release,
    ReleaseKind,
    ReleaseStatus,
    TaskState,
    Watch,
    WatchKind,
)
from state.store import Store, open_store

__all__ = [
    "ACTIVE_JOB_STATUSES",
    "CANCELLABLE",
    "RETRYABLE",
    "BuildChange",
    "Changes",
    "JobLifecycle",
    "JOB_TRANSITIONS",
    "TERMINAL_JOB_STATUSES",
    "ApprovalMode",
    "Command",
    "CommandStatus",
    "Dashboard",
    "EventAppender",
    "EventRecord",
    "GuardFailed",
    "Histogram",
    "IllegalTransition",
    "Job",
    "JobEvent",
    "JobStatus",
    "JobTask",
    "LeaseLost",
    "NewEvent",
    "NotFound",
    "Release",
    "ReleaseKind",
    "Recorded",
    "ReleaseStatus",
    "StateError",
    "Store",
    "TaskState",
    "Watch",
    "WatchKind",
    "comment_key",
    "delivery_key",
    "migrate",
    "open_store",
    "revision_key",
    "sqlite_url",
]
