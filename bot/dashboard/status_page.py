"""What the status page (`GET /`) shows, read from the store: queue, builds under way, releases, refusals, and
the repos lately renamed on the Hub (whose watches, jobs and releases the bot moved to the new name)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from state import CommandStatus, JobStatus, Store
from state.models import utcnow

LIMIT = 20
REFUSED = "refused"
HANDLED = "handled"


def status_context(store: Store) -> dict[str, Any]:
    """The template's variables; plain values only, so the template holds no queries."""
    now = utcnow()
    refusals = [
        {
            "at": c.created_at,
            "who": c.author,
            "where": f"{c.repo}#{c.discussion_num}",
            "what": c.text,
            "why": c.reason or "",
        }  # fmt: skip
        for c in store.commands.recent([CommandStatus.REFUSED], LIMIT)
    ] + [
        {
            "at": e.received_at,
            "who": "",
            "where": e.repo or "",
            "what": f"{e.scope} {e.action}",
            "why": e.error or "",
        }
        for e in store.events.recent(LIMIT, outcomes=[REFUSED])
    ]
    refusals.sort(key=lambda r: r["at"], reverse=True)
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
        "moves": [
            {"at": e.received_at, "old": e.repo, "new": (e.payload.get("movedTo") or {}).get("name")}
            for e in store.events.recent(5, outcomes=[HANDLED], scope="repo", action="move")
        ],
        "ago": _ago_from(now),
    }


def _ago_from(now: datetime) -> Any:
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
