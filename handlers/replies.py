"""The bot's reply to a command: one comment, re-rendered from the store whenever its builds move.

The text is a pure function of the command record, its jobs and their releases, so whoever notices a
change (the command handler, the executor, the reviews handler) renders the same reply and edits the same
comment; an edit that would not change the text is skipped.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, MutableMapping
from typing import Any

from bot.errors import HubError
from state import Command, CommandStatus, GuardFailed, Job, JobStatus, Release, ReleaseStatus, Store

log = logging.getLogger(__name__)

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
    if job.status is JobStatus.QUEUED:
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


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def refresh(store: Store, hub: Any, build_key: str, seen: MutableMapping[str, str] | None = None) -> None:
    """Edit the replies that follow `build_key` to show where it is now; close those whose builds are done.

    `seen` remembers the last text posted per comment (the executor keeps one) so that a heartbeat that
    changed nothing visible costs no Hub call. A failed edit is logged: the next change retries it.
    """
    for command in following(store, build_key):
        text, done = reply_state(store, command)
        comment_id = command.reply_comment_id
        if comment_id and (seen is None or seen.get(comment_id) != text):
            try:
                hub.edit_comment(command.repo, command.discussion_num, comment_id, text)
            except HubError as e:
                log.warning(
                    "could not edit reply %s in %s#%s: %s",
                    comment_id,
                    command.repo,
                    command.discussion_num,
                    e,
                )
                continue
            if seen is not None:
                seen[comment_id] = text
        if done:
            with contextlib.suppress(GuardFailed):  # another thread closed it first
                store.commands.update(
                    command.id, from_statuses=[CommandStatus.REPLIED], status=CommandStatus.DONE
                )
