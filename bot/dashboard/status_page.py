"""What the status page (`GET /`) and `GET /api/status` show: one snapshot of the store, as plain values.

The page and the JSON are the same snapshot, so what a person sees and what a script reads never differ.
Every query is bounded (the newest `LIMIT` of each kind, counts from an index), so the page answers as fast
with a hundred thousand jobs as with ten. Links point at the configured Hub (`hf_endpoint`). Repos lately
renamed on the Hub are listed too: the bot moved their watches, jobs and releases to the new name.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.units import duration
from state import CommandStatus, Job, JobStatus, Release, Store
from state.lifecycle import retrying
from state.models import JobEvent, JobTask, utcnow

LIMIT = 20
RECENT_JOBS = 10
REFUSED = "refused"
BUILDING = (JobStatus.RUNNING, JobStatus.BUILT, JobStatus.PUBLISHING)
HANDLED = "handled"


def snapshot(
    store: Store, hub_url: str, *, hub_problem: str | None = None, budget: Any = None
) -> dict[str, Any]:
    """Everything the page shows, JSON-ready: watches, builds under way, queue, releases, problems;
    `hub_problem` says why the bot cannot act on the Hub (shown as a banner above everything); `budget`
    (`bot.budget.RequestBudget`) where the token stands in the Hub's request budget."""
    now = utcnow()
    links = _Links(hub_url)
    counts = {status.value: n for status, n in store.jobs.counts().items()}
    building = store.jobs.list(BUILDING, limit=LIMIT)
    queued = store.jobs.list([JobStatus.QUEUED], limit=LIMIT)
    failed = store.jobs.list([JobStatus.FAILED], limit=LIMIT // 2, newest_first=True)
    recent = store.jobs.list(limit=RECENT_JOBS, newest_first=True)
    shown = {job.id for job in (*building, *failed, *recent)}
    timelines = store.jobs.histories(shown)
    tasks = store.tasks.workers(sorted(shown))
    discussions = _discussions(store, links)

    def job(row: Job) -> dict[str, Any]:
        found = tasks.get(row.id, [])
        return _job(row, now, links, timelines.get(row.id, []), discussions.get(row.build_key), found)

    return {
        "as_of": now.isoformat(),
        "hub": hub_url,
        "hub_problem": hub_problem,
        "hub_budget": budget.snapshot() if budget is not None else None,
        "counts": counts,
        "watches": [
            {
                "kind": w.kind.value,
                "target": w.target,
                "url": links.page(w.target),
                "formats": list(w.formats) or ["every eligible format"],
                "sms": list(w.sms),
                "approval": w.approval.value,
                "cooldown_minutes": w.cooldown_minutes,
                "dashboard": w.dashboard,
                "ranking": [c | {"url": links.page(c["repo"])} for c in w.ranking or []],
            }
            for w in store.watches.list()[: LIMIT * 5]
        ],
        "building": [job(row) for row in building],
        "queue": {"total": counts[JobStatus.QUEUED.value], "jobs": [job(row) for row in queued]},
        "releases": _releases(store, links, now),
        "failures": [job(row) | {"todo": _failure_todo(row)} for row in failed],
        "refusals": _refusals(store, links, now),
        "recent": [job(row) for row in recent],
        "moves": _moves(store, links, now),
    }


class _Links:
    """URLs on the configured Hub, only for an http(s) endpoint (a page never carries `javascript:`)."""

    def __init__(self, hub_url: str) -> None:
        self.base = hub_url.rstrip("/") if _web(hub_url) else None

    def page(self, path: str) -> str | None:
        return f"{self.base}/{path}" if self.base else None

    def repo(self, repo_id: str | None) -> str | None:
        return self.page(repo_id) if repo_id else None

    def revision(self, repo_id: str | None, revision: str | None) -> str | None:
        return self.page(f"{repo_id}/tree/{revision}") if repo_id and revision else None

    def discussion(self, repo_id: str, num: int) -> str | None:
        return self.page(f"{repo_id}/discussions/{num}")


def _web(url: str | None) -> bool:
    return bool(url) and str(url).startswith(("https://", "http://"))


def _job(
    row: Job,
    now: datetime,
    links: _Links,
    events: list[JobEvent],
    discussion: str | None,
    tasks: list[JobTask],
) -> dict[str, Any]:
    spec = row.spec or {}
    upstream, revision = spec.get("repo_id") or row.repo, spec.get("revision")
    stage, _, message = (row.progress_message or "").partition(": ")
    started = row.publish_started_at if row.status is JobStatus.PUBLISHING else row.started_at
    elapsed = (now - started).total_seconds() if started and not row.terminal else None
    first = events[0].at if events else None
    return {
        "id": row.id,
        "label": row.label or row.repo,
        "upstream": upstream,
        "upstream_url": links.repo(upstream),
        "format": spec.get("format"),
        "revision": revision,
        "revision_url": links.revision(upstream, revision),
        "status": row.status.value,
        "stage": stage if message else (row.progress_message or ""),
        "message": message,
        "progress": round(row.progress, 4),
        "percent": int(round(row.progress * 100)),
        "worker": row.lease_owner,
        "attempts": row.attempts,
        "elapsed_s": None if elapsed is None else round(elapsed, 1),
        "elapsed": "" if elapsed is None else duration(elapsed),
        "queued_ago": ago(now, row.created_at),
        "waiting_until": (
            f"{row.not_before:%Y-%m-%d %H:%M} UTC"
            if row.status is JobStatus.QUEUED and row.not_before is not None and row.not_before > now
            else None
        ),
        "error": row.error,
        "retrying": retrying(row),  # "retrying at …, attempt n" while a step waits out the Hub's failure
        "discussion_url": discussion,
        "tasks": [_task(task) for task in tasks],
        "timeline": [
            {
                "status": e.to_status.value,
                "at": e.at.isoformat(),
                "clock": e.at.strftime("%H:%M:%S"),
                "offset": f"+{duration((e.at - first).total_seconds())}" if first else "",
                "worker": e.worker,
                "note": e.note,
            }
            for e in events
        ],
    }


def _task(task: JobTask) -> dict[str, Any]:
    """A task of a job fanned out to workers: what it builds, where it ran (a worker's name, or a Job's
    URL on the Hub) and on which queue (a Celery queue, or the Job's flavour)."""
    return {
        "what": "quantize" if task.kind == "quantize" else f"engine sm{task.sm}",
        "queue": task.queue,
        "worker": task.worker,
        "worker_url": task.worker if _web(task.worker) else None,
        "state": task.state.value,
        "attempt": task.attempt,
    }


def _discussions(store: Store, links: _Links) -> dict[str, str | None]:
    """Build key → the discussion whose slash command asked for it (the newest commands only)."""
    found: dict[str, str | None] = {}
    for command in store.commands.recent(limit=LIMIT * 5):
        for key in command.build_keys or []:
            found.setdefault(str(key), links.discussion(command.repo, command.discussion_num))
    return found


def _releases(store: Store, links: _Links, now: datetime) -> list[dict[str, Any]]:
    """Upstream → format → revision → repo or PR, for the newest releases (their jobs in one query)."""
    releases = store.releases.recent(LIMIT)
    jobs = {j.build_key: j for j in store.jobs.list(build_keys={r.build_key for r in releases}, limit=LIMIT)}
    return [_release(r, jobs.get(r.build_key), links, now) for r in releases]


def _release(r: Release, job: Job | None, links: _Links, now: datetime) -> dict[str, Any]:
    spec = (job.spec if job else None) or {}
    upstream, revision = spec.get("repo_id") or (job.repo if job else None), spec.get("revision")
    return {
        "upstream": upstream,
        "upstream_url": links.repo(upstream),
        "format": spec.get("format"),
        "revision": revision,
        "revision_url": links.revision(upstream, revision),
        "repo": r.repo_id,
        "kind": r.kind.value,
        "pr": r.pr_number,
        "as": f"PR #{r.pr_number}" if r.pr_number is not None else "new repo",
        "url": r.url if _web(r.url) else None,
        "status": r.status.value,
        "job": job.id if job else None,
        "at": r.created_at.isoformat(),
        "ago": ago(now, r.created_at),
    }


def _refusals(store: Store, links: _Links, now: datetime) -> list[dict[str, Any]]:
    """Slash commands and webhook events the bot refused, newest first, with what to do about each."""
    refusals: list[dict[str, Any]] = [
        {
            "at": c.created_at,
            "who": c.author,
            "where": f"{c.repo}#{c.discussion_num}",
            "where_url": links.discussion(c.repo, c.discussion_num),
            "what": c.text,
            "why": c.reason or "",
            "todo": _refusal_todo(c.reason or ""),
        }
        for c in store.commands.recent([CommandStatus.REFUSED], LIMIT)
    ] + [
        {
            "at": e.received_at,
            "who": "",
            "where": e.repo or "",
            "where_url": links.repo(e.repo),
            "what": f"{e.scope} {e.action}",
            "why": e.error or "",
            "todo": "Nothing to do unless the reason is wrong; then change the settings and push again.",
        }
        for e in store.events.recent(LIMIT, outcomes=[REFUSED])
    ]
    refusals.sort(key=lambda r: r["at"], reverse=True)
    return [r | {"at": r["at"].isoformat(), "ago": ago(now, r["at"])} for r in refusals[:LIMIT]]


def _moves(store: Store, links: _Links, now: datetime) -> list[dict[str, Any]]:
    """Repos the Hub renamed lately (their `move` events), whose records the bot moved to the new name."""
    moves = []
    for e in store.events.recent(5, outcomes=[HANDLED], scope="repo", action="move"):
        new = (e.payload.get("movedTo") or {}).get("name")
        moves.append({"old": e.repo, "new": new, "url": links.repo(new), "ago": ago(now, e.received_at)})
    return moves


def _refusal_todo(reason: str) -> str:
    if reason.startswith("rate limited"):
        return "Wait for the rate window to pass (command_rate_window_s), then ask again."
    if "may not build" in reason:
        return "Ask the repo's owner, a member of its org or a maintainer, or add the user to `allowlist`."
    return "The bot's reply in the discussion says more."


def _failure_todo(job: Job) -> str:
    errors = (job.manifest or {}).get("errors") or []
    if errors and errors[0].get("bad_input"):
        return "Fix the upstream repo (see the reason) and push a new revision: the bot builds it again."
    if (job.error or "").startswith("lease expired"):
        return (
            "The worker stopped answering on every attempt (killed? out of memory?): check it, then `/retry`."
        )
    return (
        "Comment `/retry` in the model's discussion, or run `quantbot build` on the spec to see the full log."
    )


def ago(now: datetime, when: datetime | None) -> str:
    """How long before `now` a time was, in words a person reads at a glance."""
    return "" if when is None else f"{duration((now - when).total_seconds())} ago"
