"""The bot's reply to a command: one comment, re-rendered from the store whenever its builds move.

The text is a pure function of the command record, its jobs and their releases, so whoever renders it (the
command handler when it answers, the bot's reply updater when the store reports a change) gets the same
reply for the same state. Rendering only: posting and editing are the callers' business.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import datetime

from state import Command, CommandStatus, GuardFailed, Job, JobStatus, Release, ReleaseStatus, Store
from state.lifecycle import retrying
from state.models import utcnow

_RELEASE_WORDS = {
    ReleaseStatus.OPEN: "ready for review (published when a maintainer merges it)",
    ReleaseStatus.MERGED: "merged and published",
    ReleaseStatus.PUBLISHED: "published",
    ReleaseStatus.CLOSED: "closed by a maintainer",
    ReleaseStatus.DECLINED: "declined by a maintainer; not opened again",
    ReleaseStatus.SUPERSEDED: "superseded by a newer revision",
}


def job_line(job: Job, releases: Iterable[Release]) -> str:
    """One line about one build: its format and SMs, then where it is."""
    spec = job.spec
    sms = ", ".join(f"sm{sm}" for sm in spec.get("target_sms") or []) or "no SM"
    head = f"- **{spec.get('format')}** ({sms}) of `{job.repo}` at `{str(spec.get('revision'))[:12]}`"
    latest = max(releases, key=lambda r: r.id, default=None)
    waiting = retrying(job)
    if waiting is not None:  # the Hub failed the build (queued) or its publish (built): said, with when
        why = _one_line(job.error or "the Hub failed", 200)
        state = f"{'waiting' if job.status is JobStatus.QUEUED else 'built; waiting'}: {why}; {waiting}"
    elif job.status is JobStatus.QUEUED and job.not_before is not None and job.not_before > utcnow():
        state = cooling_down(job.not_before)
    elif job.status is JobStatus.QUEUED:
        state = "queued"
    elif job.status is JobStatus.RUNNING:
        detail = f": {job.progress_message}" if job.progress_message else ""
        state = f"building, {job.progress:.0%}{detail}"
    elif job.status in (JobStatus.BUILT, JobStatus.PUBLISHING):
        state = "built; publishing"
    elif job.status is JobStatus.CANCELLED:
        state = "cancelled"
    elif job.status is JobStatus.FAILED:
        state = f"failed: {_one_line(job.error or 'no reason recorded')}"
    elif latest is not None:
        state = f"{_RELEASE_WORDS[latest.status]}: {latest.url}"
    else:
        state = f"done: {_one_line(job.progress_message or 'nothing to publish')}"
    return f"{head}: {state}"


def cooling_down(until: datetime) -> str:
    """A build held by its upstream's cooldown, in words."""
    return f"waiting until {until:%Y-%m-%d %H:%M} UTC (the upstream's cooldown; `/quantize --now` skips it)"


def render(command: Command, jobs: list[Job], releases: dict[str, list[Release]]) -> str:
    """The whole reply: the command's own text (in `parsed["intro"]`), then a line per build."""
    parsed = command.parsed or {}
    parts = [str(parsed.get("intro") or "").strip()]
    if jobs:
        parts.append("\n".join(job_line(job, releases.get(job.build_key, [])) for job in jobs))
    if jobs and all(job.terminal for job in jobs):
        parts.append("All done. Type `/status` to see this model's builds, `/retry` to retry failed ones.")
    elif jobs:
        parts.append("I edit this comment as the builds progress.")
    return "\n\n".join(p for p in parts if p)


def reply_state(store: Store, command: Command) -> tuple[str, bool]:
    """The reply's text now, and whether every build it follows is finished."""
    jobs = store.jobs.list(build_keys=command.build_keys) if command.build_keys else []
    releases = {job.build_key: store.releases.find(build_key=job.build_key) for job in jobs}
    return render(command, jobs, releases), all(job.terminal for job in jobs)


def following(store: Store, build_key: str, limit: int = 1000) -> list[Command]:
    """The answered commands whose reply follows the build `build_key` (not yet done)."""
    return [
        c for c in store.commands.recent([CommandStatus.REPLIED], limit=limit) if build_key in c.build_keys
    ]


def close(store: Store, command_id: int) -> None:
    """A reply whose builds are all finished stops following them (another thread may have closed it)."""
    with contextlib.suppress(GuardFailed):
        store.commands.update(command_id, from_statuses=[CommandStatus.REPLIED], status=CommandStatus.DONE)


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
