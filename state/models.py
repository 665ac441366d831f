"""The tables: events, watches, jobs (and their transition log), releases, commands.

Status columns are Python enums stored as short strings (no native database ENUM type), so adding a state
is a data change, not a type migration. Times are timezone-aware UTC in Python whatever the database keeps.
The job state machine is `JOB_TRANSITIONS`; `state.jobs` refuses any edge that is not in it.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    """Now, timezone-aware UTC: the only clock the store uses."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC in Python; naive UTC in SQLite (text order = time order), timestamptz in PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("the store only takes timezone-aware datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class JobStatus(enum.StrEnum):
    """Where a build is: queued → running → built → publishing → published, or failed / cancelled."""

    QUEUED = "queued"
    RUNNING = "running"
    BUILT = "built"
    PUBLISHING = "publishing"
    PUBLISHED = "published"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_JOB_STATUSES = frozenset({JobStatus.PUBLISHED, JobStatus.FAILED, JobStatus.CANCELLED})
ACTIVE_JOB_STATUSES = frozenset(JobStatus) - TERMINAL_JOB_STATUSES

# Every edge of the job state machine. running → queued and publishing → built are how an expired lease is
# given back; failed/cancelled → queued is `/retry`; failed → built retries only the publish step.
JOB_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.FAILED}),
    JobStatus.RUNNING: frozenset({JobStatus.BUILT, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.QUEUED}),
    JobStatus.BUILT: frozenset({JobStatus.PUBLISHING, JobStatus.CANCELLED, JobStatus.FAILED}),
    JobStatus.PUBLISHING: frozenset({JobStatus.PUBLISHED, JobStatus.FAILED, JobStatus.BUILT}),
    JobStatus.PUBLISHED: frozenset(),
    JobStatus.FAILED: frozenset({JobStatus.QUEUED, JobStatus.BUILT}),
    JobStatus.CANCELLED: frozenset({JobStatus.QUEUED}),
}


class WatchKind(enum.StrEnum):
    """What a watch follows: one repo, every repo of an author, or new fine-tunes of a base model."""

    REPO = "repo"
    AUTHOR = "author"
    BASE_MODEL = "base_model"


class ApprovalMode(enum.StrEnum):
    """Whether a watched upstream's builds are released at once or as a PR a maintainer approves."""

    AUTO = "auto"
    APPROVAL = "approval"


class ReleaseKind(enum.StrEnum):
    """A release is a new repo of its own or a pull request on an existing one."""

    REPO = "repo"
    PR = "pr"


class ReleaseStatus(enum.StrEnum):
    """What became of a release on the Hub."""

    OPEN = "open"
    MERGED = "merged"
    CLOSED = "closed"
    SUPERSEDED = "superseded"
    PUBLISHED = "published"
    DECLINED = "declined"


class CommandStatus(enum.StrEnum):
    """A slash command's life: received, answered (replied), refused, finished (done) or failed."""

    RECEIVED = "received"
    REPLIED = "replied"
    REFUSED = "refused"
    DONE = "done"
    FAILED = "failed"


def _enum(cls: type[enum.Enum]) -> SAEnum:
    """Stored as its value in a VARCHAR with a CHECK constraint, portable across SQLite and PostgreSQL."""
    return SAEnum(
        cls,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [m.value for m in members],
        name=None,  # so the CHECK constraint is named by the metadata's convention, per table and column
    )


class Base(DeclarativeBase):
    """Declarative base; `Base.metadata` is what the Alembic migrations describe."""

    # Named constraints: PostgreSQL wants unique names, and SQLite migrations can only drop what has a name.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(column_0_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class EventRecord(Base):
    """One webhook delivery (or poller finding), stored before it is acknowledged."""

    __tablename__ = "events"
    # /metrics counts by scope and outcome from this index, without reading the payloads.
    __table_args__ = (Index("ix_events_scope_outcome", "scope", "outcome"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Not indexed: nothing looks an event up by its delivery (its dedup_key is what makes it unique), and
    # an index on a digest puts each acknowledgement's insert on a page of its own.
    delivery_id: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))
    repo: Mapped[str | None] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]]
    dedup_key: Mapped[str] = mapped_column(String(255), unique=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(index=True)
    outcome: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)


class Watch(Base):
    """An upstream the bot follows, and what to build for it."""

    __tablename__ = "watches"
    __table_args__ = (UniqueConstraint("kind", "target", name="uq_watches_kind_target"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[WatchKind] = mapped_column(_enum(WatchKind))
    target: Mapped[str] = mapped_column(String(200))
    formats: Mapped[list[Any]] = mapped_column(default=list)
    sms: Mapped[list[Any]] = mapped_column(default=list)
    approval: Mapped[ApprovalMode] = mapped_column(_enum(ApprovalMode), default=ApprovalMode.APPROVAL)
    # "none": the KV cache is not quantized; None: the planner's default (FP8 where the matrices mark it).
    kv_cache: Mapped[str | None] = mapped_column(String(16))
    # minutes an upstream revision must stay the newest before it is built; None: the setting's default
    cooldown_minutes: Mapped[int | None] = mapped_column(Integer)
    # one discussion on each watched upstream saying where its releases stand (opt-in)
    dashboard: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # a base-model watch that builds only its most popular fine-tunes, `monthly_budget` of them a month
    # (None: the setting's); `ranking` is the last ranking made, with each candidate's reason
    demand: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    monthly_budget: Mapped[int | None] = mapped_column(Integer)
    ranking: Mapped[list[Any] | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ListingMark(Base):
    """How far the poller has read one of the Hub's listings (newest first): nothing last modified before
    `seen_until` is new to it. `key` names the listing: `author:<name>`, `base_model:<id>`, `all`."""

    __tablename__ = "listing_marks"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    seen_until: Mapped[datetime]


class Job(Base):
    """One BuildSpec to build and publish; `build_key` is unique for ever, so a duplicate never runs twice."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_id", "status", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    build_key: Mapped[str] = mapped_column(String(128), unique=True)
    repo: Mapped[str] = mapped_column(String(200), index=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    spec: Mapped[dict[str, Any]]
    plan: Mapped[dict[str, Any] | None]  # its task graph (builders.spec.TaskGraph), planned when queued
    status: Mapped[JobStatus] = mapped_column(_enum(JobStatus), default=JobStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None]
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    progress_message: Mapped[str | None] = mapped_column(Text)
    manifest: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    source_event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    not_before: Mapped[datetime | None]  # a queued job waits for its upstream's cooldown until then
    started_at: Mapped[datetime | None]
    built_at: Mapped[datetime | None]
    publish_started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    build_seconds: Mapped[float | None] = mapped_column(Float)
    publish_seconds: Mapped[float | None] = mapped_column(Float)
    # A step (build or publish) the Hub failed waits, queued or built, until `retry_at`; `transient_since`
    # is its first such failure (the deadline counts from it), `transient_tries` how many it had so far.
    retry_at: Mapped[datetime | None]
    transient_since: Mapped[datetime | None]
    transient_tries: Mapped[int] = mapped_column(default=0)

    @property
    def terminal(self) -> bool:
        """Published, failed or cancelled."""
        return self.status in TERMINAL_JOB_STATUSES


class JobEvent(Base):
    """One transition of one job, appended in the same transaction as the transition itself."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[JobStatus | None] = mapped_column(_enum(JobStatus))
    to_status: Mapped[JobStatus] = mapped_column(_enum(JobStatus))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    worker: Mapped[str | None] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(Text)


class TaskState(enum.StrEnum):
    """A remote task as the bot last saw it: sent to the broker, started on a worker, then how it ended."""

    SENT = "sent"
    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REVOKED = "revoked"
    LOST = "lost"


FINISHED_TASK_STATES = frozenset({TaskState.SUCCEEDED, TaskState.FAILED, TaskState.REVOKED, TaskState.LOST})


class JobTask(Base):
    """One task a job fanned out to a queue (its quantize task, an engine task per SM), and who ran it.

    Workers never touch the database: the bot writes these rows from what the broker's result backend says.
    """

    __tablename__ = "job_tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    task_id: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # "quantize" or "engine"
    sm: Mapped[int | None]
    queue: Mapped[str] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(default=1)
    state: Mapped[TaskState] = mapped_column(_enum(TaskState), default=TaskState.SENT)
    worker: Mapped[str | None] = mapped_column(String(200))
    message: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None]
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    running_s: Mapped[float | None] = mapped_column(Float)  # a Hugging Face Job's billed runtime
    cost_usd: Mapped[float | None] = mapped_column(
        Float
    )  # that runtime at its flavour's price (the `queue` column names it)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_TASK_STATES


class Release(Base):
    """What the publisher made on the Hub for a build: a repo or a PR, and what became of it."""

    __tablename__ = "releases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    build_key: Mapped[str] = mapped_column(String(128), index=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    repo_id: Mapped[str] = mapped_column(String(200), index=True)
    kind: Mapped[ReleaseKind] = mapped_column(_enum(ReleaseKind))
    pr_number: Mapped[int | None]
    url: Mapped[str] = mapped_column(Text)
    status: Mapped[ReleaseStatus] = mapped_column(_enum(ReleaseStatus), default=ReleaseStatus.OPEN)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # the last time the release was verified again as published, under which runtime table, and the outcome
    verified_at: Mapped[datetime | None]
    verified_table: Mapped[str | None] = mapped_column(String(64))
    verified_ok: Mapped[bool | None] = mapped_column(Boolean)


class Command(Base):
    """A slash command read in a discussion comment, and the bot's reply to it."""

    __tablename__ = "commands"
    __table_args__ = (
        Index("ix_commands_author_created", "author", "created_at"),
        Index("ix_commands_discussion", "repo", "discussion_num"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repo: Mapped[str] = mapped_column(String(200))
    discussion_num: Mapped[int]
    comment_id: Mapped[str] = mapped_column(String(64), unique=True)
    author: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)
    parsed: Mapped[dict[str, Any] | None]
    reply_comment_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[CommandStatus] = mapped_column(_enum(CommandStatus), default=CommandStatus.RECEIVED)
    reason: Mapped[str | None] = mapped_column(Text)
    build_keys: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Dashboard(Base):
    """The discussion on a watched upstream that says where its releases stand, and the text it shows."""

    __tablename__ = "dashboards"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    upstream: Mapped[str] = mapped_column(String(200), unique=True)
    discussion_num: Mapped[int]
    text: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
