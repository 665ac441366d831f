"""Watches: the upstreams the bot follows, what it builds for each, and how far the poller has read each of
the Hub's listings that serve them (`ListingMark`).

Targets match in any case, as the Hub resolves repo ids and user names: a watch written `Org/Model` covers
`org/model`, and adding it again in another case changes the one watch."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, delete, func, select

from state.db import Database
from state.models import ApprovalMode, ListingMark, Watch, WatchKind, utcnow


class WatchStore:
    """The `watches` table; one row per (kind, target)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(
        self,
        kind: WatchKind,
        target: str,
        *,
        formats: Iterable[str] = (),
        sms: Iterable[int] = (),
        approval: ApprovalMode = ApprovalMode.APPROVAL,
        kv_cache: Literal["none"] | None = None,
        cooldown_minutes: int | None = None,
        dashboard: bool = False,
        demand: bool = False,
        monthly_budget: int | None = None,
    ) -> Watch:
        """Follow `target`, or change what is built for it if it is already followed (empty = all).

        `kv_cache="none"` turns the default FP8 KV cache off for its builds; None keeps the default.
        `cooldown_minutes` overrides the setting's cooldown for this watch; `dashboard` keeps a discussion on
        each watched upstream saying where its releases stand; `demand` (base-model watches) builds only the
        most popular fine-tunes, `monthly_budget` of them a month (None: the setting's)."""
        with self._db.write() as s:
            watch = s.execute(select(Watch).where(_is(kind, target))).scalar_one_or_none()
            if watch is None:
                watch = Watch(kind=kind, target=target, created_at=utcnow())
                s.add(watch)
            watch.formats = list(formats)
            watch.sms = list(sms)
            watch.approval = approval
            watch.kv_cache = kv_cache
            watch.cooldown_minutes = cooldown_minutes
            watch.dashboard = dashboard
            watch.demand = demand
            watch.monthly_budget = monthly_budget
        return watch

    def set_ranking(self, watch_id: int, ranking: list[dict[str, Any]]) -> None:
        """Keep the demand ranking made last for a watch (the status page shows it)."""
        with self._db.write() as s:
            watch = s.get(Watch, watch_id)
            if watch is not None:
                watch.ranking = ranking

    def remove(self, kind: WatchKind, target: str) -> bool:
        """Stop following `target`; False if it was not followed."""
        with self._db.write() as s:
            deleted = s.execute(delete(Watch).where(_is(kind, target)).returning(Watch.id)).all()
        return bool(deleted)

    def find(self, kind: WatchKind, target: str) -> Watch | None:
        """The watch on `target`, if any."""
        with self._db.read() as s:
            return s.execute(select(Watch).where(_is(kind, target))).scalar_one_or_none()

    def list(self, kind: WatchKind | None = None) -> list[Watch]:
        """Every watch (of one kind), in the order they were added."""
        query = select(Watch).order_by(Watch.id)
        if kind is not None:
            query = query.where(Watch.kind == kind)
        with self._db.read() as s:
            return list(s.scalars(query))

    def marks(self) -> dict[str, datetime]:
        """How far the poller has read each listing (`ListingMark`), by key."""
        with self._db.read() as s:
            return {mark.key: mark.seen_until for mark in s.scalars(select(ListingMark))}

    def advance_marks(self, marks: Mapping[str, datetime]) -> None:
        """Move listings' marks forward (never back: a slower poll that overlapped keeps the newer one)."""
        if not marks:
            return
        with self._db.write() as s:
            known = {m.key: m for m in s.scalars(select(ListingMark).where(ListingMark.key.in_(list(marks))))}
            for key, when in marks.items():
                if key not in known:
                    s.add(ListingMark(key=key, seen_until=when))
                elif known[key].seen_until < when:
                    known[key].seen_until = when


def _is(kind: WatchKind, target: str) -> ColumnElement[bool]:
    return (Watch.kind == kind) & (func.lower(Watch.target) == target.lower())
