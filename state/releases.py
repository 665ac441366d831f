"""Releases: what the publisher made on the Hub for a build, and what maintainers did with it."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import func, select, update

from state.changes import BuildChange, Changes
from state.db import Database
from state.errors import GuardFailed, IllegalTransition, NotFound
from state.models import Release, ReleaseKind, ReleaseStatus, utcnow

# A closed PR may be reopened; published, declined and superseded releases are final.
RELEASE_TRANSITIONS: dict[ReleaseStatus, frozenset[ReleaseStatus]] = {
    ReleaseStatus.OPEN: frozenset(
        {
            ReleaseStatus.MERGED,
            ReleaseStatus.CLOSED,
            ReleaseStatus.SUPERSEDED,
            ReleaseStatus.PUBLISHED,
            ReleaseStatus.DECLINED,
        }
    ),
    ReleaseStatus.MERGED: frozenset({ReleaseStatus.PUBLISHED}),
    ReleaseStatus.CLOSED: frozenset({ReleaseStatus.DECLINED, ReleaseStatus.OPEN}),
    ReleaseStatus.PUBLISHED: frozenset(),
    ReleaseStatus.DECLINED: frozenset(),
    ReleaseStatus.SUPERSEDED: frozenset(),
}


class ReleaseStore:
    """The `releases` table; every new release and status change is told to `changes`."""

    def __init__(self, db: Database, changes: Changes | None = None) -> None:
        self._db = db
        self.changes = changes or Changes()

    def record(
        self,
        *,
        build_key: str,
        repo_id: str,
        kind: ReleaseKind,
        url: str,
        pr_number: int | None = None,
        job_id: int | None = None,
        status: ReleaseStatus = ReleaseStatus.OPEN,
    ) -> Release:
        """Remember a repo or PR the publisher created."""
        if (kind is ReleaseKind.PR) != (pr_number is not None):
            raise ValueError("a PR release needs its pr_number, a repo release has none")
        now = utcnow()
        release = Release(
            build_key=build_key,
            repo_id=repo_id,
            kind=kind,
            url=url,
            pr_number=pr_number,
            job_id=job_id,
            status=status,
            created_at=now,
            updated_at=now,
        )
        with self._db.write() as s:
            s.add(release)
        self.changes.emit(BuildChange(build_key))
        return release

    def get(self, release_id: int) -> Release:
        """One release; NotFound if there is none with that id."""
        with self._db.read() as s:
            release = s.get(Release, release_id)
        if release is None:
            raise NotFound("release", release_id)
        return release

    def find(
        self,
        *,
        build_key: str | None = None,
        repo_id: str | None = None,
        pr_number: int | None = None,
        statuses: Collection[ReleaseStatus] | None = None,
    ) -> list[Release]:
        """Releases matching every filter given (`repo_id` in any case, as on the Hub), oldest first."""
        query = select(Release).order_by(Release.id)
        if build_key is not None:
            query = query.where(Release.build_key == build_key)
        if repo_id is not None:
            query = query.where(func.lower(Release.repo_id) == repo_id.lower())
        if pr_number is not None:
            query = query.where(Release.pr_number == pr_number)
        if statuses is not None:
            query = query.where(Release.status.in_(list(statuses)))
        with self._db.read() as s:
            return list(s.scalars(query))

    def set_status(
        self, release_id: int, from_statuses: Collection[ReleaseStatus], to_status: ReleaseStatus
    ) -> Release:
        """Guarded status change (e.g. open → merged); `GuardFailed` if the release is elsewhere."""
        sources = frozenset(from_statuses)
        if not sources or any(to_status not in RELEASE_TRANSITIONS[s] for s in sources):
            raise IllegalTransition("release", sources, to_status)
        stmt = (
            update(Release)
            .where(Release.id == release_id, Release.status.in_(list(sources)))
            .values(status=to_status, updated_at=utcnow())
            .returning(Release)
            .execution_options(synchronize_session=False)
        )
        with self._db.write() as s:
            release = s.execute(stmt).scalar_one_or_none()
            if release is None:
                current = s.execute(
                    select(Release.status).where(Release.id == release_id)
                ).scalar_one_or_none()
                if current is None:
                    raise NotFound("release", release_id)
                raise GuardFailed("release", release_id, sources, current)
        self.changes.emit(BuildChange(release.build_key))
        return release

    def verified(self, release_id: int, *, at: datetime, table: str, ok: bool) -> None:
        """Remember that a published release was verified again at `at` under runtime table `table`."""
        stmt = (
            update(Release)
            .where(Release.id == release_id)
            .values(verified_at=at, verified_table=table, verified_ok=ok)
            .execution_options(synchronize_session=False)
        )
        with self._db.write() as s:
            s.execute(stmt)

    def recent(self, limit: int = 20) -> list[Release]:
        """The newest releases first."""
        with self._db.read() as s:
            return list(s.scalars(select(Release).order_by(Release.id.desc()).limit(limit)))
