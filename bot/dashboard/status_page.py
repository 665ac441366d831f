"""What the status page (`GET /`) shows, read from the store: queue, builds under way, releases, refusals."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

from state import CommandStatus, JobStatus, Store
from state.models import utcnow

LIMIT = 20
REFUSED = "refused"


class Refusal(NamedTuple):
    """One refused slash command or webhook, as the page lists it."""

    at: datetime
    who: str
    where: str
    what: str
    why: str


def status_context(store: Store) -> dict[str, Any]:
    """The template's variables; plain values only, so the template holds no queries."""
    now = utcnow()
    refusals = [
        Refusal(c.created_at, c.author, f"{c.repo}#{c.discussion_num}", c.text, c.reason or "")
        for c in store.commands.recent([CommandStatus.REFUSED], LIMIT)
    ] + [
        Refusal(e.received_at, "", e.repo or "", f"{e.scope} {e.action}", e.error or "")
        for e in store.events.recent(LIMIT, outcomes=[REFUSED])
    ]
    refusals.sort(key=lambda r: r.at, reverse=True)
    return {
        "now": now,
        "counts": {status.value: n for status, n in store.jobs.counts().items()},
        "queue": store.jobs.list([JobStatus.QUEUED], limit=LIMIT),
        "active": store.jobs.list([JobStatus.RUNNING, JobStatus.BUILT, JobStatus.PUBLISHING], limit=LIMIT),
        "failed": store.jobs.list([JobStatus.FAILED], limit=LIMIT // 2, newest_first=True),
        "releases": [
            {"release": r, "link": r.url if r.url.startswith(("https://", "http://")) else None}
            for r in store.releases.recent(LIMIT)
        ],
        "refusals": refusals[:LIMIT],
        "ago": _ago_from(now),
    }


def _ago_from(now: datetime) -> Callable[[datetime | None], str]:
    """A template helper: how long before `now` a time was, in words a person reads at a glance."""

    def ago(when: datetime | None) -> str:
        if when is None:
            return ""
        seconds = max(0, int((now - when).total_seconds()))
        for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
            if seconds >= size:
                return f"{seconds // size} {unit} ago"
        return f"{seconds} s ago"

    return ago
