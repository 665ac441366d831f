"""Jobs: enqueue once per build key, claim atomically, move only along `JOB_TRANSITIONS`, log every move.

Every change of status is one guarded statement, `UPDATE jobs … WHERE id = ? AND status IN (…)` (plus
`AND lease_owner = ?` for a worker), in the same transaction as its row in `job_events`. When the guard does
not hold nothing changes and `GuardFailed` (or `LeaseLost`) says what the job's status was instead.
Claiming is one statement too: on PostgreSQL the candidate row is picked with `FOR UPDATE SKIP LOCKED`, so
two workers never wait on, let alone take, the same job; on SQLite the write lock makes the statement atomic.
"""

from __future__ import annotations

import builtins
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, NoReturn

from sqlalchemy import ColumnElement, case, func, literal, or_, select, true, update
from sqlalchemy.orm import Session

from state.changes import BuildChange, Changes
from state.db import Database, insert_ignoring_conflict
from state.errors import GuardFailed, IllegalTransition, LeaseLost, NotFound
from state.models import (
    JOB_TRANSITIONS,
    Job,
    JobEvent,
    JobStatus,
    utcnow,
)

LEASED = frozenset({JobStatus.RUNNING, JobStatus.PUBLISHING})
# Fields a caller may set along with a transition; the rest (times, lease, attempts) the store owns.
SETTABLE = frozenset(
    {"manifest", "error", "progress", "progress_message", "retry_at", "transient_since", "transient_tries"}
)


@dataclass(frozen=True)
class Histogram:
    """Cumulative bucket counts (upper bound, count ≤ bound), the sum and the count of some durations."""

    buckets: list[tuple[float, int]]
    total: float
    count: int


class JobStore:
    """The `jobs` and `job_events` tables: the state machine's guarded moves, each told to `changes`.

    Callers outside `state` move jobs through `state.lifecycle.JobLifecycle`, which names why each move
    happens; these methods are its primitives.
    """

    def __init__(self, db: Database, changes: Changes | None = None) -> None:
        self._db = db
        self.changes = changes or Changes()

    # -- creating and reading ------------------------------------------------------------------------

    def enqueue(
        self,
        build_key: str,
        spec: dict[str, Any],
        *,
        repo: str,
        label: str = "",
        source_event_id: int | None = None,
        plan: dict[str, Any] | None = None,
        not_before: datetime | None = None,
    ) -> tuple[Job, bool]:
        """Queue a build unless a job with `build_key` exists (any status); return it and if it is new.

        `plan` is its task graph, as planned now: the executor sends what it says. A job with `not_before`
        is not claimed before that time (its upstream's cooldown)."""
        now = utcnow()
        row = {
            "not_before": not_before,
            "build_key": build_key,
            "repo": repo,
            "label": label,
            "spec": spec,
            "plan": plan,
            "status": JobStatus.QUEUED,
            "source_event_id": source_event_id,
            "created_at": now,
            "updated_at": now,
        }
        stmt = insert_ignoring_conflict(self._db.dialect, Job, "build_key").values(row).returning(Job.id)
        with self._db.write() as s:
            new_id = s.execute(stmt).scalar_one_or_none()
            if new_id is not None:
                s.add(JobEvent(job_id=new_id, from_status=None, to_status=JobStatus.QUEUED, at=now))
            job = s.execute(select(Job).where(Job.build_key == build_key)).scalar_one()
        if new_id is not None:
            self.changes.emit(BuildChange(build_key, job.id, JobStatus.QUEUED))
        return job, new_id is not None

    def get(self, job_id: int) -> Job:
        """One job; NotFound if there is none with that id."""
        with self._db.read() as s:
            job = s.get(Job, job_id)
        if job is None:
            raise NotFound("job", job_id)
        return job

    def list(
        self,
        statuses: Collection[JobStatus] | None = None,
        *,
        repo: str | None = None,
        build_keys: Collection[str] | None = None,
        limit: int = 100,
        newest_first: bool = False,
    ) -> list[Job]:
        """Jobs filtered by status, upstream repo (in any case) and/or build keys, in queue order (or newest
        first)."""
        query = select(Job).order_by(Job.id.desc() if newest_first else Job.id).limit(limit)
        if statuses is not None:
            query = query.where(Job.status.in_(list(statuses)))
        if repo is not None:
            query = query.where(func.lower(Job.repo) == repo.lower())
        if build_keys is not None:
            query = query.where(Job.build_key.in_(list(build_keys)))
        with self._db.read() as s:
            return list(s.scalars(query))

    def start_now(self, job_id: int) -> Job | None:
        """Let a queued job that waits for its cooldown be claimed at once; None if it is not queued."""
        stmt = (
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.QUEUED)
            .values(not_before=None, updated_at=utcnow())
            .returning(Job)
            .execution_options(synchronize_session=False)
        )
        with self._db.write() as s:
            job = s.execute(stmt).scalar_one_or_none()
        if job is not None:
            self.changes.emit(BuildChange(job.build_key, job.id, JobStatus.QUEUED))
        return job

    def history(self, job_id: int) -> builtins.list[JobEvent]:
        """Every transition of a job, oldest first."""
        with self._db.read() as s:
            return list(s.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)))

    def histories(self, job_ids: Collection[int]) -> dict[int, builtins.list[JobEvent]]:
        """The transitions of several jobs in one query (the status page's timelines), oldest first."""
        found: dict[int, builtins.list[JobEvent]] = {job_id: [] for job_id in job_ids}
        if not found:
            return found
        query = select(JobEvent).where(JobEvent.job_id.in_(list(found))).order_by(JobEvent.id)
        with self._db.read() as s:
            for event in s.scalars(query):
                found[event.job_id].append(event)
        return found

    # -- moving --------------------------------------------------------------------------------------

    def claim(self, worker: str, lease_s: float) -> Job | None:
        """Take the oldest queued job that is not waiting out a transient failure (→ running, leased for
        `lease_s` seconds), or None."""
        return self._claim(JobStatus.QUEUED, JobStatus.RUNNING, worker, lease_s)

    def claim_publish(self, worker: str, lease_s: float) -> Job | None:
        """Take the oldest built job to publish whose retry time (if any) has come (→ publishing, leased)."""
        return self._claim(JobStatus.BUILT, JobStatus.PUBLISHING, worker, lease_s)

    def _claim(self, source: JobStatus, target: JobStatus, worker: str, lease_s: float) -> Job | None:
        now = utcnow()
        due = or_(Job.retry_at.is_(None), Job.retry_at <= now) & or_(
            Job.not_before.is_(None), Job.not_before <= now
        )
        candidate = select(Job.id).where(Job.status == source, due).order_by(Job.id).limit(1)
        if self._db.dialect == "postgresql":
            candidate = candidate.with_for_update(skip_locked=True)
        values = _entering(target, now) | _lease(worker, lease_s, now)
        stmt = (
            update(Job)
            .where(Job.id == candidate.scalar_subquery(), Job.status == source)
            .values(values)
            .returning(Job)
            .execution_options(synchronize_session=False)
        )
        with self._db.write() as s:
            job = s.execute(stmt).scalar_one_or_none()
            if job is None:
                return None
            _record_duration(job, source, target, now)
            s.add(JobEvent(job_id=job.id, from_status=source, to_status=target, at=now, worker=worker))
        self.changes.emit(BuildChange(job.build_key, job.id, target, source))
        return job

    def transition(
        self,
        job_id: int,
        from_states: Collection[JobStatus],
        to_state: JobStatus,
        *,
        owner: str | None = None,
        lease_s: float | None = None,
        note: str | None = None,
        **fields: Any,
    ) -> Job:
        """Move a job from one of `from_states` to `to_state`, setting `fields` (manifest, error, progress).

        With `owner`, the job must also be leased to that worker (else `LeaseLost`); entering running or
        publishing with `owner` and `lease_s` leases it to `owner`. Raises `IllegalTransition` for an edge the
        state machine lacks and `GuardFailed` when the job is not in `from_states`.
        """
        sources = frozenset(from_states)
        if not sources or any(to_state not in JOB_TRANSITIONS[s] for s in sources):
            raise IllegalTransition("job", sources, to_state)
        unknown = set(fields) - SETTABLE
        if unknown:
            raise TypeError(f"transition() cannot set {sorted(unknown)}; settable: {sorted(SETTABLE)}")
        now = utcnow()
        values = _entering(to_state, now) | fields
        if to_state in LEASED and owner is not None and lease_s is not None:
            values |= _lease(owner, lease_s, now)
        guard = [Job.id == job_id, Job.status.in_(list(sources))]
        if owner is not None:
            guard.append(Job.lease_owner == owner)
        with self._db.write() as s:
            # Lock the row (PostgreSQL; SQLite's write lock already covers it) so `before` is what we change.
            before = s.execute(
                select(Job.status).where(Job.id == job_id).with_for_update()
            ).scalar_one_or_none()
            job = s.execute(
                update(Job)
                .where(*guard)
                .values(values)
                .returning(Job)
                .execution_options(synchronize_session=False)
            ).scalar_one_or_none()
            if job is None:
                self._raise_guard(s, job_id, sources, owner)
            _record_duration(job, before, to_state, now)
            s.add(
                JobEvent(
                    job_id=job_id, from_status=before, to_status=to_state, at=now, worker=owner, note=note
                )
            )
        self.changes.emit(BuildChange(job.build_key, job_id, to_state, before))
        return job

    def take_over(self, job_id: int, from_owner: str, to_owner: str, lease_s: float, note: str) -> Job:
        """Move a running job's lease from a dead worker to `to_owner` (the job stays running; logged).

        `LeaseLost` when the job is no longer running under `from_owner` (requeued or cancelled meanwhile)."""
        now = utcnow()
        stmt = (
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.RUNNING, Job.lease_owner == from_owner)
            .values(_lease(to_owner, lease_s, now))
            .returning(Job)
            .execution_options(synchronize_session=False)
        )
        with self._db.write() as s:
            job = s.execute(stmt).scalar_one_or_none()
            if job is None:
                self._raise_guard(s, job_id, {JobStatus.RUNNING}, from_owner)
            s.add(
                JobEvent(
                    job_id=job_id,
                    from_status=JobStatus.RUNNING,
                    to_status=JobStatus.RUNNING,
                    at=now,
                    worker=to_owner,
                    note=note,
                )
            )
        return job

    def heartbeat(
        self,
        job_id: int,
        owner: str,
        lease_s: float,
        *,
        progress: float | None = None,
        message: str | None = None,
    ) -> Job:
        """Extend `owner`'s lease, record progress (a fraction in [0, 1]); `LeaseLost` if it is not theirs."""
        values: dict[str, Any] = _lease(owner, lease_s, utcnow())
        if progress is not None:
            if not 0.0 <= progress <= 1.0:
                raise ValueError(f"progress must be within [0, 1], got {progress}")
            values["progress"] = progress
        if message is not None:
            values["progress_message"] = message
        stmt = (
            update(Job)
            .where(Job.id == job_id, Job.status.in_(list(LEASED)), Job.lease_owner == owner)
            .values(values)
            .returning(Job)
            .execution_options(synchronize_session=False)
        )
        with self._db.write() as s:
            job = s.execute(stmt).scalar_one_or_none()
            if job is None:
                self._raise_guard(s, job_id, LEASED, owner)
        if message is not None:
            stage = message.split(":", 1)[0]
            self.changes.emit(BuildChange(job.build_key, job_id, job.status, job.status, stage))
        return job

    def set_manifest(
        self, job_id: int, manifest: dict[str, Any], statuses: Collection[JobStatus]
    ) -> Job | None:
        """Replace the manifest of a job in one of `statuses`, without moving it; None if it is in none."""
        stmt = (
            update(Job)
            .where(Job.id == job_id, Job.status.in_(list(statuses)))
            .values(manifest=manifest, updated_at=utcnow())
            .returning(Job)
            .execution_options(synchronize_session=False)
        )
        with self._db.write() as s:
            job = s.execute(stmt).scalar_one_or_none()
        if job is not None:
            self.changes.emit(BuildChange(job.build_key, job_id, job.status, job.status, "engines"))
        return job

    def requeue_expired(
        self, now: datetime | None = None, max_attempts: int | None = None
    ) -> builtins.list[int]:
        """Give back jobs whose lease ran out: running → queued, publishing → built; returns their ids.

        A running job that already had `max_attempts` attempts fails instead of running again (the attempts
        the Hub's failures cost, `transient_tries`, do not count: they are the transient policy's).
        """
        now = now or utcnow()
        moves: list[tuple[JobStatus, JobStatus, Any]] = []
        if max_attempts is not None:
            lost = Job.attempts - Job.transient_tries >= max_attempts
            moves.append((JobStatus.RUNNING, JobStatus.FAILED, lost))
        moves += [
            (JobStatus.RUNNING, JobStatus.QUEUED, true()),
            (JobStatus.PUBLISHING, JobStatus.BUILT, true()),
        ]
        moved: list[int] = []
        changes: list[BuildChange] = []
        with self._db.write() as s:
            for source, target, extra in moves:
                values = _entering(target, now)
                if target is JobStatus.FAILED:
                    values["error"] = f"lease expired after {max_attempts} attempts"
                rows = s.execute(
                    update(Job)
                    .where(Job.status == source, Job.lease_expires_at < now, extra)
                    .values(values)
                    .returning(Job.id, Job.build_key)
                    .execution_options(synchronize_session=False)
                ).all()
                s.add_all(
                    JobEvent(job_id=i, from_status=source, to_status=target, at=now, note="lease expired")
                    for i, _ in rows
                )
                moved += [i for i, _ in rows]
                changes += [BuildChange(key, i, target, source) for i, key in rows]
        for change in changes:
            self.changes.emit(change)
        return moved

    @staticmethod
    def _raise_guard(s: Session, job_id: int, expected: Collection[JobStatus], owner: str | None) -> NoReturn:
        row = s.execute(select(Job.status, Job.lease_owner).where(Job.id == job_id)).one_or_none()
        if row is None:
            raise NotFound("job", job_id)
        status, lease_owner = row
        if owner is None:
            raise GuardFailed("job", job_id, expected, status)
        # Requeued after expiry, taken by another worker, or cancelled: either way it is no longer `owner`'s.
        raise LeaseLost("job", job_id, owner, expected, status, lease_owner)

    # -- numbers -------------------------------------------------------------------------------------

    def counts(self) -> dict[JobStatus, int]:
        """How many jobs are in each status (every status present, zero included)."""
        with self._db.read() as s:
            rows = s.execute(select(Job.status, func.count()).group_by(Job.status)).all()
        found = dict(rows)
        return {status: found.get(status, 0) for status in JobStatus}

    def durations(self, kind: Literal["build", "publish"], buckets: Sequence[float]) -> Histogram:
        """Histogram of build (running → built) or publish (publishing → published) seconds, all jobs."""
        column = Job.build_seconds if kind == "build" else Job.publish_seconds
        bounds = sorted(buckets)
        columns: builtins.list[ColumnElement[Any]] = [
            func.count(column),
            func.coalesce(func.sum(column), 0.0),
        ]
        columns += [func.coalesce(func.sum(case((column <= b, 1), else_=0)), 0) for b in bounds]
        with self._db.read() as s:
            count, total, *cumulative = s.execute(select(*columns)).one()
        return Histogram(
            list(zip(bounds, (int(c) for c in cumulative), strict=True)), float(total), int(count)
        )


def _lease(owner: str, lease_s: float, now: datetime) -> dict[str, Any]:
    return {"lease_owner": owner, "lease_expires_at": now + timedelta(seconds=lease_s), "updated_at": now}


def _entering(target: JobStatus, now: datetime) -> dict[str, Any]:
    """The columns the store sets on entering `target` (times, attempts, lease cleared when leaving one)."""
    values: dict[str, Any] = {"status": target, "updated_at": now}
    if target not in LEASED:
        values |= {"lease_owner": None, "lease_expires_at": None}
    else:
        values["retry_at"] = None  # the wait is over
    if target is JobStatus.QUEUED:
        values |= {"finished_at": None, "progress": 0.0, "progress_message": None}
    elif target is JobStatus.RUNNING:
        values |= {"attempts": Job.attempts + 1, "started_at": now, "error": None, "progress": 0.0}
        values |= {"built_at": None, "build_seconds": None}
    elif target is JobStatus.BUILT:
        values |= {
            "built_at": func.coalesce(Job.built_at, literal(now, Job.built_at.type)),
            "progress": 1.0,
            "error": None,
        }
    elif target is JobStatus.PUBLISHING:
        values |= {"publish_started_at": now, "publish_seconds": None}
    else:
        values["finished_at"] = now
    return values


def _record_duration(job: Job, source: JobStatus | None, target: JobStatus, now: datetime) -> None:
    """Durations need the row's earlier times, known only once the guarded update returned it."""
    if source is JobStatus.RUNNING and target is JobStatus.BUILT and job.started_at is not None:
        job.build_seconds = (now - job.started_at).total_seconds()
    elif (
        source is JobStatus.PUBLISHING
        and target is JobStatus.PUBLISHED
        and job.publish_started_at is not None
    ):
        job.publish_seconds = (now - job.publish_started_at).total_seconds()
