"""What changed among the watched repos, found with the Hub's listings: a poll costs what changed.

Each watch is served by a listing of the Hub sorted by last modification, newest first: an author's models
(`author:<name>`), a base model's fine-tunes (`base_model:<id>`, the Hub's `base_model:` tag filter), and
for repos watched one by one the listing of their namespace (shared with an author watch on it), or, when
they are spread over more than `MAX_NAMESPACES` namespaces, the listing of all models (`all`). A listing is
read page by page only down to its mark, the newest last modification it showed before (kept in the store,
`ListingMark`), less `MARGIN` for commits the Hub lists a little late; so a quiet listing costs one request
and k changes about k/`PAGE` more. The items carry their sha, so no repo is read to learn what changed.

A change is new once per (repo, sha) for this process (the overlap behind a mark is not reported twice);
the events the poller records from it are deduplicated by the store anyway. The listing of all models reads
at most `MAX_ALL` changes past its mark a poll; beyond that the namespaces' own listings are read instead,
so nothing is missed when the whole Hub is busier than the watched repos.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.errors import HubBudgetSpent, HubError
from state import Watch, WatchKind

log = logging.getLogger(__name__)

MARGIN = timedelta(minutes=1)
MAX_NAMESPACES = 10
PAGE = 100
MAX_ALL = 2_000
ALL_PAGE = 1_000  # the Hub's largest page: the whole Hub's changes of a minute or more in one request
ALL = "all"


@dataclass(frozen=True)
class Change:
    """A model whose `main` moved: its id as the Hub spells it, the new sha, and whether it is private.

    `since`: when the earliest watch that follows it was added (None: a commands namespace follows it);
    `watched`: a watch asks for its builds (a commands namespace alone does not); `commands`: the bot
    takes commands in its discussions (a repo or author watch, or a commands namespace: not a base model
    watch alone)."""

    repo: str
    sha: str
    modified: datetime
    private: bool
    since: datetime | None
    watched: bool
    commands: bool


@dataclass(frozen=True)
class Follower:
    """Who follows a listing's items: since when (None: any time), for builds, for commands."""

    since: datetime | None
    builds: bool
    commands: bool


@dataclass
class Listing:
    """One listing and who follows what it shows: every item (`every`), or some repos by id."""

    key: str
    author: str | None = None
    filter: str | None = None
    every: list[Follower] = field(default_factory=list)
    repos: dict[str, datetime] = field(default_factory=dict)  # lower-case id → when its watch was added

    def follows(self, repo: str) -> list[Follower]:
        added = self.repos.get(repo.lower())
        return [*self.every, *([Follower(added, True, True)] if added is not None else [])]

    def start(self) -> datetime | None:
        """The earliest time anything it serves follows (None: a commands namespace, from any time)."""
        times = [f.since for f in self.every] + list(self.repos.values())
        return None if None in times else min(t for t in times if t is not None)


@dataclass
class Found:
    """One poll's findings: the changes by lower-case repo, the listings' new marks, the listings that
    failed, and why the poll stopped early (the poller's share of the request budget was spent: every other
    listing would be refused the same way until the window resets)."""

    by_repo: dict[str, Change] = field(default_factory=dict)
    marks: dict[str, datetime] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    spent: str | None = None

    @property
    def changes(self) -> list[Change]:
        return list(self.by_repo.values())


class ChangeFinder:
    """Reads the listings the watches need, each down to its mark (see the module's docstring)."""

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self._seen: dict[str, str] = {}  # lower-case repo → the sha last reported

    def find(
        self,
        watches: Iterable[Watch],
        marks: Mapping[str, datetime],
        *,
        command_namespaces: Iterable[str] = (),
        now: datetime,
    ) -> Found:
        """The changes since each listing's mark (a listing read for the first time starts at its watch)."""
        listings, spread = plan(watches, command_namespaces)
        found = Found()
        for listing in listings.values():
            self._read(listing, marks, found, now)
        if spread:
            whole = Listing(ALL, repos=spread)
            newest = self._read(whole, marks, found, now, at_most=MAX_ALL)
            if isinstance(newest, datetime):  # the Hub is busier than MAX_ALL: one listing per namespace
                failed = len(found.failed)
                for listing in by_namespace(spread).values():
                    self._read(listing, marks, found, now)
                if len(found.failed) == failed:
                    found.marks[ALL] = newest
        self._seen.update({key: change.sha for key, change in found.by_repo.items()})
        return found

    def _read(
        self,
        listing: Listing,
        marks: Mapping[str, datetime],
        found: Found,
        now: datetime,
        at_most: int | None = None,
    ) -> bool | datetime:
        """Read one listing into `found`: True if read, False if it failed; cut at `at_most` items, the
        newest modification it showed (nothing is taken from it then)."""
        start = marks.get(listing.key) or listing.start() or now
        if found.spent is not None:
            found.failed.append(listing.key)
            return False
        try:
            items, cut = self.hub.models_modified_since(
                start,
                overlap=MARGIN,
                author=listing.author,
                filter=listing.filter,
                page=ALL_PAGE if listing.key == ALL else PAGE,
                at_most=at_most,
            )
        except HubBudgetSpent as e:
            log.info("the poll stops at listing %s until the budget's next window: %s", listing.key, e)
            found.spent = str(e)
            found.failed.append(listing.key)
            return False
        except HubError as e:
            log.warning("poll of listing %s failed: %s", listing.key, e)
            found.failed.append(listing.key)
            return False
        newest = max((info.last_modified for info in items), default=None)
        if cut:
            log.warning("the listing %s has over %d changes since its mark", listing.key, at_most)
            return max(newest or start, start)
        if newest is not None or listing.key not in marks:
            found.marks[listing.key] = max(newest or start, start)
        for info in items:
            self._change(listing, info, found)
        return True

    def _change(self, listing: Listing, info: Any, found: Found) -> None:
        """Add a listing's item to `found`; an item two listings show is one change (who follows, merged)."""
        key, sha = info.id.lower(), info.sha
        followers = [f for f in listing.follows(info.id) if f.since is None or info.last_modified >= f.since]
        if not sha or not followers or self._seen.get(key) == sha:
            return
        if (known := found.by_repo.get(key)) is not None:
            if known.sha != sha:
                return
            followers.append(Follower(known.since, known.watched, known.commands))
        times = [f.since for f in followers]
        found.by_repo[key] = Change(
            repo=info.id,
            sha=sha,
            modified=info.last_modified,
            private=bool(getattr(info, "private", False)),
            since=None if None in times else min(t for t in times if t is not None),
            watched=any(f.builds for f in followers),
            commands=any(f.commands for f in followers),
        )


def plan(
    watches: Iterable[Watch], command_namespaces: Iterable[str]
) -> tuple[dict[str, Listing], dict[str, datetime]]:
    """The listings the watches need, by key, and the repo watches left to the listing of all models."""
    listings: dict[str, Listing] = {}
    repo_watches: dict[str, datetime] = {}
    for watch in watches:
        if watch.kind is WatchKind.AUTHOR:
            _author(listings, watch.target).every.append(Follower(watch.created_at, True, True))
        elif watch.kind is WatchKind.BASE_MODEL:
            key = f"base_model:{watch.target.lower()}"
            listing = listings.setdefault(key, Listing(key, filter=f"base_model:{watch.target}"))
            listing.every.append(Follower(watch.created_at, True, False))
        else:
            repo_watches[watch.target.lower()] = watch.created_at
    for namespace in command_namespaces:
        _author(listings, namespace).every.append(Follower(None, False, True))
    rest: dict[str, datetime] = {}
    for repo, added in repo_watches.items():
        namespace = repo.partition("/")[0]
        if f"author:{namespace}" in listings:
            listings[f"author:{namespace}"].repos[repo] = added
        else:
            rest[repo] = added
    grouped = by_namespace(rest)
    if len(grouped) <= MAX_NAMESPACES:
        listings.update(grouped)
        return listings, {}
    return listings, rest


def by_namespace(repos: Mapping[str, datetime]) -> dict[str, Listing]:
    """One author listing per namespace of `repos`, following just those repos."""
    listings: dict[str, Listing] = {}
    for repo, added in repos.items():
        _author(listings, repo.partition("/")[0]).repos[repo] = added
    return listings


def _author(listings: dict[str, Listing], name: str) -> Listing:
    key = f"author:{name.lower()}"
    return listings.setdefault(key, Listing(key, author=name))
