"""Housekeeping of the job queue, run by the bot's scheduler twice per lease.

Jobs whose lease expired (their worker died) are requeued, or failed after `max_attempts`; builds and
publishes that failed for a transient reason get another go once their backoff passed
(`bot.execution.retries`). The executor hears of the jobs moved from the store's change listeners.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from bot.execution.retries import Retries
from bot.settings import Settings
from state import Store

log = logging.getLogger(__name__)


class Housekeeping:
    """Requeues expired leases and retries transient failures."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.retries = Retries(settings, store)

    def housekeeping(self, now: datetime | None = None) -> None:
        """One round: expired leases back to the queue, then the retries whose backoff has passed."""
        now = now or datetime.now(UTC)
        moved = self.store.lifecycle.requeue_expired(now, max_attempts=self.settings.max_attempts)
        if moved:
            log.warning("requeued jobs whose lease expired: %s", moved)
        self.retries.sweep(now)
