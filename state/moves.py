"""A repo renamed or transferred on the Hub: what the bot keeps under its name follows it, in one transaction.

Watches on the repo (or naming it as a base model), the upstream's jobs, the releases made on it and the
commands given in its discussions move to the new name. A job's build key names the repo, so each job is
re-keyed with `rekey` (the caller's: the store does not know how keys are made), and the releases and replies
that follow that key with it: the same revision delivered under the new name is then the same build, not a
second one. Names match in any case, as on the Hub.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from state.db import Database
from state.models import Command, Job, Release, Watch, WatchKind, utcnow

Rekey = Callable[[dict[str, Any]], str | None]
"""The build key of a job's spec (its `repo_id` already the new name); None keeps the old key."""


@dataclass(frozen=True)
class Moved:
    """How many of the bot's records followed a repo to its new name."""

    watches: int = 0
    jobs: int = 0
    releases: int = 0
    commands: int = 0

    def __bool__(self) -> bool:
        return any((self.watches, self.jobs, self.releases, self.commands))


def move_repo(db: Database, old: str, new: str, rekey: Rekey) -> Moved:
    """Move every record kept under `old` to `new`."""
    with db.write() as s:
        watches = _move_watches(s, old, new)
        keys, jobs = _move_jobs(s, old, new, rekey)
        releases = _move_releases(s, old, new, keys)
        commands = _move_commands(s, old, new, keys)
    return Moved(watches, jobs, releases, commands)


def _named(column: Any, name: str) -> Any:
    return func.lower(column) == name.lower()


def _move_watches(s: Session, old: str, new: str) -> int:
    found = s.scalars(
        select(Watch).where(Watch.kind.in_([WatchKind.REPO, WatchKind.BASE_MODEL]), _named(Watch.target, old))
    ).all()
    for watch in found:
        taken = s.scalars(select(Watch).where(Watch.kind == watch.kind, _named(Watch.target, new))).first()
        if taken is not None and taken.id != watch.id:
            s.delete(watch)  # the new name is watched already: that watch stays as it was set
        else:
            watch.target = new
    return len(found)


def _move_jobs(s: Session, old: str, new: str, rekey: Rekey) -> tuple[dict[str, str], int]:
    """Jobs of the upstream: renamed, respecified and re-keyed; returns old key → new key."""
    keys: dict[str, str] = {}
    jobs = s.scalars(select(Job).where(_named(Job.repo, old))).all()
    for job in jobs:
        spec = dict(job.spec)
        if str(spec.get("repo_id", "")).lower() == old.lower():
            spec["repo_id"] = new
        key = rekey(spec) or job.build_key
        if key != job.build_key and s.scalar(select(Job.id).where(Job.build_key == key)) is None:
            keys[job.build_key] = key
            job.build_key = key
        job.repo, job.spec, job.updated_at = new, spec, utcnow()
    s.flush()
    return keys, len(jobs)


def _move_releases(s: Session, old: str, new: str, keys: dict[str, str]) -> int:
    moved = 0
    for release in s.scalars(
        select(Release).where(_named(Release.repo_id, old) | Release.build_key.in_(keys))
    ):
        if release.build_key in keys:
            release.build_key = keys[release.build_key]
        if release.repo_id.lower() == old.lower():
            release.repo_id, release.url = new, _renamed_url(release.url, old, new)
            moved += 1
        release.updated_at = utcnow()
    return moved


def _move_commands(s: Session, old: str, new: str, keys: dict[str, str]) -> int:
    moved = 0
    for command in s.scalars(select(Command)):
        following = [keys.get(key, key) for key in command.build_keys]
        if following != command.build_keys:
            command.build_keys = following
        if command.repo.lower() == old.lower():
            command.repo = new
            moved += 1
    return moved


def _renamed_url(url: str, old: str, new: str) -> str:
    """`…/old/discussions/3` → `…/new/discussions/3` (the name as a whole path part, in any case)."""
    at = url.lower().find("/" + old.lower())
    end = at + 1 + len(old)
    if at < 0 or (end < len(url) and url[end] not in "/?#"):
        return url
    return url[: at + 1] + new + url[end:]
