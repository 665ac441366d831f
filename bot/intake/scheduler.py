"""Polling for what webhooks missed, run by the bot's scheduler (`bot.scheduler`) every `poll_interval_min`.

The poll first stores the commands no webhook delivered (`bot.intake.catchup`), then turns every watched
model whose `main` changed since the watch was added into the same stored event a webhook would have made
(same `repo.content` payload shape, same deduplication key: repo + sha), so a revision seen by both the
webhook and the poll is handled once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from bot.errors import HubError
from bot.intake.catchup import CatchUp
from bot.intake.webhooks import Event, event_from_payload, repo_block
from bot.settings import Settings
from handlers.context import Options
from state import Store, Watch, WatchKind

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
        self.catch_up = CatchUp(settings, store, hub, options=options, record=self._record)

    def poll(self) -> int:
        """Store the commands and then the revisions webhooks missed; returns how many events are new."""
        return self.catch_up.run() + self.poll_watches()

    def poll_watches(self) -> int:
        """Record an event per watched model changed since its watch was added; returns how many are new."""
        new = 0
        for watch in self.store.watches.list():
            try:
                models = self._models(watch)
            except HubError as e:
                log.warning("poll of %s %s failed: %s", watch.kind.value, watch.target, e)
                continue
            for info in models:
                changed = getattr(info, "last_modified", None)
                if info.sha is None or (changed is not None and changed < watch.created_at):
                    continue  # a watch follows changes made after it was added
                payload = poll_payload(
                    self.settings.hf_endpoint, info.id, info.sha, bool(getattr(info, "private", False))
                )
                new += self._record(payload, f"poll:{info.id}:{info.sha}")
        return new

    def _models(self, watch: Watch) -> Iterable[Any]:
        if watch.kind is WatchKind.REPO:
            return [self.hub.model_info(watch.target)]
        if watch.kind is WatchKind.AUTHOR:
            return self.hub.list_models(author=watch.target)
        return self.hub.list_models(filter=f"base_model:{watch.target}")

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
