"""Catching up on commands the webhooks missed: posted while the bot was down, or delivered to nobody.

Which repos are read: on a start after a downtime (the store holds events: the bot ran before), every repo
where the bot takes commands (watched repos, the models of watched authors and of `command_namespaces`,
found with one listing per namespace), once; after that only the repos with new activity, which the poll's
listings show (`bot.intake.listings`), so a quiet poll reads no discussion. Of each repo it reads the open
discussions and PRs and stores every comment addressed to the bot that is newer than the repo's cutoff as
the `discussion.comment` `create` event the Hub's webhook would have carried, with the webhook's
deduplication key (the comment id). A comment the webhook delivered too is then one event, and the commands
table answers a comment once whatever stores it twice. The Hub's listings show no discussion activity: a
comment on a repo that did not change otherwise reaches the bot by its webhook, or by the sweep after a
downtime (`start_sweep`).

The discussion listing gives no time of last activity, so every open discussion's details are read; a run
reads at most `MAX_DETAILS` of them, and as many repos as the catch-up's share of the request budget allows
(`bot.budget`); the next run goes on from the repo where it stopped. A repo's cutoff moves to the run's
start (less `MARGIN`, for the Hub's clock) once all of it was read; a Hub error keeps the repo due until the
next run, its cutoff kept. The first cutoff is the newest stored event's time less `MARGIN` (read when the
bot is assembled, before the server stores anything new); a bot that has stored no event yet was never
down, so it starts from its own start and answers nothing older.
A cutoff is never more than `MAX_LOOK_BACK` ago, as a command that old is stale.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from huggingface_hub.community import DiscussionComment, DiscussionWithDetails

from bot.errors import HubBudgetSpent, HubError, WebhookBadPayload
from bot.intake.listings import Change
from bot.intake.webhooks import repo_block
from bot.settings import Settings
from handlers.context import Options
from handlers.slash_syntax import addressed_to_bot
from state import Store, WatchKind
from state.dedup import digest

log = logging.getLogger(__name__)

CATCHUP_WEBHOOK_ID = "quantbot-catchup"
MARGIN = timedelta(minutes=10)
MAX_LOOK_BACK = timedelta(days=7)
MAX_DETAILS = 200

Record = Callable[[dict[str, Any], str], int]  # (payload, delivery id) → 1 if stored anew, else 0


@dataclass(frozen=True)
class CommandRepo:
    """A repo where the bot takes commands: its id as the Hub spells it, whether it is private, and the
    time before which it did not (a watch follows what happens after it was added; None: any time)."""

    id: str
    private: bool
    floor: datetime | None


class CatchUp:
    """Finds comments addressed to the bot that no webhook stored, and stores them as the webhook would."""

    def __init__(
        self, settings: Settings, store: Store, hub: Any, *, options: Callable[[], Options], record: Record
    ) -> None:
        self.settings = settings
        self.store = store
        self.hub = hub
        self.options = options  # the bot's names, known once the Hub answered
        self.record = record
        latest = store.events.latest_received_at()
        self.first_cutoff = latest - MARGIN if latest is not None else datetime.now(UTC)
        # a bot that had stored nothing was never down: nothing posted before it started is for it, ever
        self.born = datetime.now(UTC) if latest is None else None
        self.sweeping = latest is not None  # it was down: every repo where it takes commands is read once
        self.cutoffs: dict[str, datetime] = {}  # repo (lower case) → comments after this time are looked at
        self.due: dict[str, CommandRepo] = {}  # repos (lower case) whose discussions are to be read
        self.resume_at = ""  # the repo (lower case) the next run starts from

    def start_sweep(self) -> None:
        """Read every repo where the bot takes commands once more, over the next runs."""
        self.sweeping = True

    def run(self, active: Iterable[Change] = (), now: datetime | None = None) -> int:
        """Read the discussions of the repos due (bounded); returns how many comments it stored."""
        started = now or datetime.now(UTC)
        if self.sweeping:
            try:
                self.due.update(self._repos())
                self.sweeping = False
            except HubError as e:
                log.warning("catch-up could not list the repos where the bot takes commands: %s", e)
        for change in active:
            if change.commands:
                self.due.setdefault(
                    change.repo.lower(), CommandRepo(change.repo, change.private, change.since)
                )
        keys = sorted(self.due)
        start = bisect.bisect_left(keys, self.resume_at) % len(keys) if keys else 0
        self.resume_at = ""
        budget, new = MAX_DETAILS, 0
        for key in keys[start:] + keys[:start]:
            repo = self.due[key]
            try:
                discussions = self.hub.open_discussions(repo.id)
                if len(discussions) > budget and budget < MAX_DETAILS:
                    self.resume_at = key  # out of reads: this repo comes first next time
                    break
                read = discussions[:budget]
                budget -= len(read)
                since = self._cutoff(key, repo.floor, started)
                for discussion in read:
                    new += self._comments(repo, self.hub.discussion(repo.id, discussion.num), since)
            except HubBudgetSpent as e:  # nothing more is sent this window: the rest waits for the next run
                log.info("catch-up stops for now: %s", e)
                self.resume_at = key
                break
            except HubError as e:
                log.warning("catch-up skipped %s this round: %s", repo.id, e)
                continue
            if len(read) < len(discussions):
                log.warning(
                    "catch-up read %d of the %d open discussions of %s", len(read), len(discussions), repo.id
                )
            else:
                self.cutoffs[key] = started - MARGIN
                del self.due[key]
        if new:
            log.info("catch-up found %d command(s) no webhook delivered", new)
        return new

    def _repos(self) -> dict[str, CommandRepo]:
        """Where the bot takes commands, by lower-case id: watched repos, the models of watched authors and
        of `command_namespaces`; one listing per namespace."""
        every: dict[str, tuple[str, datetime | None]] = {}  # namespaces all of whose models take commands
        repos: dict[str, datetime] = {}  # repo watches: lower-case id → when added
        for watch in self.store.watches.list():
            if watch.kind is WatchKind.REPO:
                repos[watch.target.lower()] = watch.created_at
            elif watch.kind is WatchKind.AUTHOR:
                _earliest(every, watch.target, watch.created_at)
        for namespace in self.settings.command_namespaces:
            _earliest(every, namespace, None)
        found: dict[str, CommandRepo] = {}
        for lower in sorted({repo.partition("/")[0] for repo in repos} | set(every)):
            name, floor_all = every.get(lower, (lower, None))
            for info in self.hub.list_models(author=name):
                key = info.id.lower()
                floors = ([floor_all] if lower in every else []) + ([repos[key]] if key in repos else [])
                if floors:
                    floor = None if None in floors else min(f for f in floors if f is not None)
                    found[key] = CommandRepo(info.id, bool(getattr(info, "private", False)), floor)
        return found

    def _cutoff(self, key: str, floor: datetime | None, now: datetime) -> datetime:
        limits = [
            self.cutoffs.get(key, self.first_cutoff),
            now - MAX_LOOK_BACK,
            *([self.born] if self.born else []),
        ]
        return max(limits if floor is None else [*limits, floor])

    def _comments(self, info: CommandRepo, details: DiscussionWithDetails, since: datetime) -> int:
        """Store the comments of a discussion addressed to the bot, newer than `since`; how many were new."""
        options, new = self.options(), 0
        for event in details.events:
            if not isinstance(event, DiscussionComment) or event.created_at <= since or event.hidden:
                continue
            if (
                options.is_bot(event.author)
                or addressed_to_bot(event.content or "", options.bot_name) is None
            ):
                continue
            payload = comment_payload(self.settings.hf_endpoint, info, details, event)
            try:
                new += self.record(payload, f"catchup:{event.id}")
            except WebhookBadPayload as e:  # a shape the Hub's webhook would not have either: skip it
                log.warning("catch-up skipped comment %s in %s#%d: %s", event.id, info.id, details.num, e)
        return new


def comment_payload(
    endpoint: str, info: Any, details: DiscussionWithDetails, comment: DiscussionComment
) -> dict[str, Any]:
    """The `discussion.comment` `create` webhook the Hub sends for `comment` (webhook id: the catch-up's).

    The comment id is the Hub's (webhook and details API share it); ids the details do not give (the
    discussion's, the users') are stable digests in the Hub's alphabet."""
    repo = repo_block(endpoint, info.id, bool(getattr(info, "private", False)))
    web = f"{repo['url']['web']}/discussions/{details.num}"
    discussion: dict[str, Any] = {
        "id": digest("discussion", info.id, str(details.num))[:24],
        "num": details.num,
        "title": details.title,
        "status": details.status,
        "isPullRequest": details.is_pull_request,
        "url": {"web": web, "api": f"{repo['url']['api']}/discussions/{details.num}"},
        "author": {"id": digest("user", details.author)[:24]},
    }
    if details.is_pull_request:
        discussion["changes"] = {"base": details.target_branch or "refs/heads/main"}
        if details.merge_commit_oid:
            discussion["changes"]["mergeCommitId"] = details.merge_commit_oid
    return {
        "event": {"action": "create", "scope": "discussion.comment"},
        "repo": repo,
        "discussion": discussion,
        "comment": {
            "id": comment.id,
            "author": {"id": digest("user", comment.author)[:24]},
            "hidden": False,
            "content": comment.content,
            "url": {"web": f"{web}#{comment.id}"},
        },
        "webhook": {"id": CATCHUP_WEBHOOK_ID, "version": 3},
    }


def _earliest(every: dict[str, tuple[str, datetime | None]], name: str, when: datetime | None) -> None:
    """Keep the earliest floor per namespace (None, any time, is the earliest)."""
    known = every.get(name.lower())
    floor = when if known is None else (None if when is None or known[1] is None else min(known[1], when))
    every[name.lower()] = (name if known is None else known[0], floor)
