"""Housekeeping of the job queue, run by the bot's scheduler twice per lease.

Jobs whose lease expired (their worker died) are requeued, or failed after `max_attempts`. Steps the Hub
failed need no sweep: they wait in the queue (or built) and are claimed again once their time comes
(`bot.retries`). The executor hears of the jobs moved from the store's change listeners.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from bot.settings import Settings
from state import Store

log = logging.getLogger(__name__)


class Housekeeping:
    """Requeues the jobs whose lease expired."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store

    def housekeeping(self, now: datetime | None = None) -> None:
        """One round: expired leases back to the queue."""
        now = now or datetime.now(UTC)
        moved = self.store.lifecycle.requeue_expired(now, max_attempts=self.settings.max_attempts)
        if moved:
            log.warning("requeued jobs whose lease expired: %s", moved)
