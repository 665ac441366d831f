"""Timed work: polling for what webhooks missed, and housekeeping of the job queue.

The poll first stores the commands no webhook delivered (`bot.intake.catchup`), then turns every watched
model whose `main` changed since the watch was added into the same stored event a webhook would have made
(same `repo.content` payload shape, same deduplication key: repo + sha), so a revision seen by both the
webhook and the poll is handled once. Housekeeping requeues jobs whose lease expired (a worker died) and gives
builds and publishes that failed for a transient reason another go, with exponential backoff
(`bot.execution.retries`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from bot.errors import HubError
from bot.execution.retries import Retries
from bot.intake.catchup import CatchUp
from bot.intake.webhooks import Event, event_from_payload, repo_block
from bot.settings import Settings
from handlers.context import Options
from state import Store, Watch, WatchKind

log = logging.getLogger(__name__)

POLL_WEBHOOK_ID = "quantbot-poller"


class Poller:
    """The two periodic tasks; `Scheduler` runs them, tests call them directly."""

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
        self.retries = Retries(settings, store)
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

    def housekeeping(self, now: datetime | None = None) -> None:
        """Requeue expired leases; retry transient failures of builds and publishes once their backoff passed.

        The executor hears of the jobs moved from the store's change listeners."""
        now = now or datetime.now(UTC)
        moved = self.store.lifecycle.requeue_expired(now, max_attempts=self.settings.max_attempts)
        if moved:
            log.warning("requeued jobs whose lease expired: %s", moved)
        self.retries.sweep(now)


def poll_payload(endpoint: str, repo: str, sha: str, private: bool) -> dict[str, Any]:
    """A `repo.content` update of `main` as the Hub would send it (webhook id: the poller's)."""
    return {
        "event": {"action": "update", "scope": "repo.content"},
        "repo": repo_block(endpoint, repo, private, head_sha=sha),
        "updatedRefs": [{"ref": "refs/heads/main", "oldSha": None, "newSha": sha}],
        "webhook": {"id": POLL_WEBHOOK_ID, "version": 3},
    }


class Scheduler:
    """APScheduler's BackgroundScheduler running the poll every `poll_interval_min` and housekeeping often."""

    def __init__(self, poller: Poller, *, poll_minutes: float, housekeeping_s: float) -> None:
        self._scheduler = BackgroundScheduler(timezone=UTC)
        now = datetime.now(UTC)
        self._scheduler.add_job(
            _logged(poller.poll),
            "interval",
            minutes=poll_minutes,
            next_run_time=now,
            id="poll",
            max_instances=1,
            coalesce=True,
        )
        self._scheduler.add_job(
            _logged(poller.housekeeping),
            "interval",
            seconds=housekeeping_s,
            next_run_time=now,
            id="housekeeping",
            max_instances=1,
            coalesce=True,
        )

    def start(self) -> Scheduler:
        self._scheduler.start()
        return self

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)


def _logged(task: Callable[[], Any]) -> Callable[[], None]:
    def run() -> None:
        try:
            task()
        except Exception:  # the next run tries again
            log.exception("scheduled %s failed", task.__name__)

    run.__name__ = task.__name__
    return run
