"""Polling for what webhooks missed, run by the bot's scheduler (`bot.scheduler`) every `poll_interval_min`.

The poll finds what changed with the Hub's listings, each read down to where the last poll stopped
(`bot.intake.listings`: a quiet poll costs a request per listing, not per repo), turns every watched model
whose `main` changed since the watch was added into the same stored event a webhook would have made (same
`repo.content` payload shape, same deduplication key: repo + sha), so a revision seen by both the webhook
and the poll is handled once, then stores the commands no webhook delivered (`bot.intake.catchup`: of the
changed repos it reads those whose change no webhook told of). Its requests are the poller's and the
catch-up's in the token's budget (`bot.budget`): the lowest priority, never more than their share of a
window.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bot.intake.catchup import CatchUp
from bot.intake.listings import Change, ChangeFinder
from bot.intake.webhooks import Event, event_from_payload, repo_block
from bot.settings import Settings
from handlers.context import Options
from state import Store

log = logging.getLogger(__name__)

POLL_WEBHOOK_ID = "quantbot-poller"


class Poller:
    """The periodic poll; the bot's scheduler runs it, tests call it directly."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        hub: Any,
        *,
        wake: Callable[[int, Event], object],
        options: Callable[[], Options],
    ) -> None:
        self.settings = settings
        self.store = store
        self.hub = hub
        self.wake = wake  # told of each new event and its parse (the dispatcher's `wake`)
        self.finder = ChangeFinder(hub)
        self.catch_up = CatchUp(settings, store, hub, options=options, record=self._record)

    def poll(self) -> int:
        """Store the revisions and then the commands webhooks missed; returns how many events are new."""
        with self.hub.acting_as("poller"):
            changes = self._changes()
        unheard = self._record_changes(changes)
        new = sum(1 for change in unheard if change.watched)  # each recorded anew
        with self.hub.acting_as("catchup"):
            return new + self.catch_up.run(unheard)

    def poll_watches(self) -> int:
        """Record an event per watched model changed since its watch was added; returns how many are new."""
        with self.hub.acting_as("poller"):
            return sum(1 for change in self._record_changes(self._changes()) if change.watched)

    def _changes(self) -> list[Change]:
        """What the Hub's listings show changed since the last poll (their marks move on in the store)."""
        found = self.finder.find(
            self.store.watches.list(),
            self.store.watches.marks(),
            command_namespaces=self.settings.command_namespaces,
            now=datetime.now(UTC),
        )
        self.store.watches.advance_marks(found.marks)
        return found.changes

    def _record_changes(self, changes: list[Change]) -> list[Change]:
        """Record the watched changes; the changes no webhook told of (a repo whose push its webhook delivered
        has its comments delivered too: the catch-up need not read it)."""
        unheard = []
        for change in changes:
            if change.watched:
                payload = poll_payload(self.settings.hf_endpoint, change.repo, change.sha, change.private)
                if not self._record(payload, f"poll:{change.repo}:{change.sha}"):
                    continue
            unheard.append(change)
        return unheard

    def _record(self, payload: dict[str, Any], delivery_id: str) -> int:
        """Store an event the bot made as a webhook would (1: new, 0: a duplicate) and wake the dispatcher."""
        event = event_from_payload(payload, delivery_id)
        recorded = self.store.events.record(
            delivery_id=event.delivery_id[:64],
            scope=event.scope,
            action=event.action,
            payload=event.payload,
            dedup_key=event.dedup_key,
            repo=event.repo,
        )
        if recorded.created:
            log.info("%s found %s %s on %s", delivery_id.split(":")[0], event.scope, event.action, event.repo)
            self.wake(recorded.event_id, event)
        return int(recorded.created)


def poll_payload(endpoint: str, repo: str, sha: str, private: bool) -> dict[str, Any]:
    """A `repo.content` update of `main` as the Hub would send it (webhook id: the poller's)."""
    return {
        "event": {"action": "update", "scope": "repo.content"},
        "repo": repo_block(endpoint, repo, private, head_sha=sha),
        "updatedRefs": [{"ref": "refs/heads/main", "oldSha": None, "newSha": sha}],
        "webhook": {"id": POLL_WEBHOOK_ID, "version": 3},
    }
