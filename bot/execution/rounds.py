"""An orchestrator's rounds on the bot's one scheduler, woken by the store.

The orchestrator (`bot.execution.orchestrator`) claims queued jobs from the store itself and hears of new,
retried and cancelled jobs from the store's change listeners (`state.changes`), so nothing needs to tell it
about a job: a change only nudges its next round.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from bot.budget import acting_as
from bot.scheduler import Scheduler
from state import BuildChange, Changes, JobStatus

log = logging.getLogger(__name__)


class Rounds:
    """An orchestrator's rounds, on the bot's one scheduler (`bot.scheduler`; one alone gets its own):
    `poll` every `poll_s`, at once when the store tells of a queued or cancelled job, never two at once.
    `stop` ends them, and the caller's thread goes on polling while `busy` (builds that end with the bot)."""

    def __init__(
        self,
        name: str,
        poll: Callable[[], None],
        poll_s: float,
        busy: Callable[[], bool],
        scheduler: Scheduler | None = None,
    ) -> None:
        self.name = name
        self.poll = poll
        self.poll_s = poll_s
        self.busy = busy
        self.scheduler = scheduler or Scheduler()
        self._own_scheduler = scheduler is None
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._cancelled: set[int] = set()
        self._unlisten: Callable[[], None] | None = None

    def listen(self, changes: Changes) -> None:
        """Hear of queued and cancelled jobs from the store (until `stop`)."""
        self._unlisten = changes.listen(self.on_change)

    def on_change(self, change: BuildChange) -> None:
        """From the store, in whichever thread moved the job: only take note, the next round acts."""
        if not change.moved:
            return
        if change.status is JobStatus.CANCELLED and change.job_id is not None:
            with self._lock:
                self._cancelled.add(change.job_id)
        if change.status in (JobStatus.QUEUED, JobStatus.CANCELLED):
            self.scheduler.nudge(self.name)

    def cancelled(self) -> set[int]:
        """The jobs cancelled since the last call."""
        with self._lock:
            taken, self._cancelled = self._cancelled, set()
        return taken

    def start(self) -> None:
        self.stopping.clear()
        self.scheduler.every(self.name, self.round, seconds=self.poll_s)
        if self._own_scheduler:
            self.scheduler.start()

    def round(self) -> None:
        """One round; the Hub requests it makes count as the builds' (`bot.budget`)."""
        with acting_as("builds"):
            self.poll()

    def stop(self, timeout: float) -> None:
        """No more scheduled rounds; then rounds here while `busy` (or until `timeout`)."""
        self.stopping.set()
        self.scheduler.remove(self.name)
        if self._own_scheduler:
            self.scheduler.stop()
        deadline = time.monotonic() + timeout
        while self.busy() and time.monotonic() < deadline:
            try:
                self.round()
            except Exception:  # the store failed this round; the next one tries again
                log.exception("%s: a round failed", self.name)
            time.sleep(self.poll_s)
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
