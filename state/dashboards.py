"""Dashboards: the one discussion per watched upstream that says where its releases stand."""

from __future__ import annotations

from sqlalchemy import func, select

from state.db import Database
from state.models import Dashboard, utcnow


class DashboardStore:
    """The `dashboards` table: one row per upstream, its discussion and the text it shows now."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def find(self, upstream: str) -> Dashboard | None:
        """The dashboard of `upstream` (in any case, as on the Hub), if one was opened."""
        with self._db.read() as s:
            query = select(Dashboard).where(func.lower(Dashboard.upstream) == upstream.lower())
            return s.execute(query).scalar_one_or_none()

    def save(self, upstream: str, discussion_num: int, text: str) -> Dashboard:
        """Remember the dashboard's discussion and the text it shows (created or updated)."""
        with self._db.write() as s:
            query = select(Dashboard).where(func.lower(Dashboard.upstream) == upstream.lower())
            row = s.execute(query).scalar_one_or_none()
            if row is None:
                row = Dashboard(upstream=upstream)
                s.add(row)
            row.discussion_num, row.text, row.updated_at = discussion_num, text, utcnow()
        return row
