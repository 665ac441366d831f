"""Catching up on commands the webhooks missed: posted while the bot was down, or delivered to nobody.

On start and on each poll the bot reads the open discussions and PRs of the repos where it takes commands
(watched repos, the models of watched authors and of `command_namespaces`) and stores every comment addressed
to it that is newer than the repo's cutoff as the `discussion.comment` `create` event the Hub's webhook would
have carried, with the webhook's deduplication key (the comment id). A comment the webhook delivered too is
then one event, and the commands table answers a comment once whatever stores it twice.

The listing gives no time of last activity, so every open discussion's details are read; a run reads at
most `MAX_DETAILS` of them and `MAX_REPOS` repos, and the next run goes on from the repo where it stopped.
A repo's cutoff moves to the run's start (less `MARGIN`, for the Hub's clock) once all of it was read; a Hub
error skips the repo until the next run, its cutoff kept. The first cutoff is the newest stored event's time
less `MARGIN` (read when the bot is assembled, before the server stores anything new); a bot that has stored
no event yet was never down, so it starts from its own start and answers nothing older.
A cutoff is never more than `MAX_LOOK_BACK` ago, as a command that old is stale.
"""

from __future__ import annotations

import bisect
import functools
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from huggingface_hub.community import DiscussionComment, DiscussionWithDetails

from bot.errors import HubError, WebhookBadPayload
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
MAX_REPOS = 100
MAX_DETAILS = 200

Record = Callable[[dict[str, Any], str], int]  # (payload, delivery id) → 1 if stored anew, else 0


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
        self.cutoffs: dict[str, datetime] = {}  # repo (lower case) → comments after this time are looked at
        self.resume_at = ""  # the repo (lower case) the next run starts from

    def run(self, now: datetime | None = None) -> int:
        """One pass over the repos (bounded); returns how many comments it stored."""
        started = now or datetime.now(UTC)
        repos = self._repos()
        keys = sorted(repos)
        start = bisect.bisect_left(keys, self.resume_at) % len(keys) if keys else 0
        order = keys[start:] + keys[:start]
        self.resume_at = order[MAX_REPOS] if len(order) > MAX_REPOS else ""
        budget, new = MAX_DETAILS, 0
        for key in order[:MAX_REPOS]:
            info, floor = repos[key]
            try:
                discussions = self.hub.open_discussions(info.id)
                if len(discussions) > budget and budget < MAX_DETAILS:
                    self.resume_at = key  # out of reads: this repo comes first next time
                    break
                read = discussions[:budget]
                budget -= len(read)
                since = self._cutoff(key, floor, started)
                for discussion in read:
                    new += self._comments(info, self.hub.discussion(info.id, discussion.num), since)
            except HubError as e:
                log.warning("catch-up skipped %s this round: %s", info.id, e)
                continue
            if len(read) < len(discussions):
                log.warning(
                    "catch-up read %d of the %d open discussions of %s", len(read), len(discussions), info.id
                )
            else:
                self.cutoffs[key] = started - MARGIN
        if new:
            log.info("catch-up found %d command(s) no webhook delivered", new)
        return new

    def _repos(self) -> dict[str, tuple[Any, datetime | None]]:
        """Where the bot takes commands, by lower-case id, with the time before which it did not (a watch
        follows what happens after it was added): watched repos, the models of watched authors and of
        `command_namespaces`."""
        sources: list[tuple[str, datetime | None, Callable[[], list[Any]]]] = []
        for watch in self.store.watches.list():
            listing: Callable[[], list[Any]]
            if watch.kind is WatchKind.REPO:
                listing = functools.partial(_one, self.hub.model_info, watch.target)
            elif watch.kind is WatchKind.AUTHOR:
                listing = functools.partial(self.hub.list_models, author=watch.target)
            else:
                continue
            sources.append((watch.target, watch.created_at, listing))
        for namespace in self.settings.command_namespaces:
            sources.append((namespace, None, functools.partial(self.hub.list_models, author=namespace)))
        found: dict[str, tuple[Any, datetime | None]] = {}
        for name, added, list_models in sources:
            try:
                infos = list_models()
            except HubError as e:
                log.warning("catch-up could not list %s: %s", name, e)
                continue
            for info in infos:
                key = info.id.lower()
                floor = found[key][1] if key in found else added
                found[key] = (info, None if floor is None or added is None else min(floor, added))
        return found

    def _cutoff(self, key: str, floor: datetime | None, now: datetime) -> datetime:
        limits = [
            self.cutoffs.get(key, self.first_cutoff),
            now - MAX_LOOK_BACK,
            *([self.born] if self.born else []),
        ]
        return max(limits if floor is None else [*limits, floor])

    def _comments(self, info: Any, details: DiscussionWithDetails, since: datetime) -> int:
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


def _one(lookup: Callable[[str], Any], repo_id: str) -> list[Any]:
    return [lookup(repo_id)]
