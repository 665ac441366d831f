"""The bot's one background scheduler: every periodic loop of `quantbot serve` runs on it.

APScheduler's BackgroundScheduler runs the poll (`bot.intake.scheduler.Poller`) every `poll_interval_min`,
housekeeping (`bot.execution.housekeeping`) twice per lease, the executor's rounds (`bot.execution.executor`),
the reply updater's sweep, the dashboards' refresh and re-verification; `nudge` runs a
job at once (the store told a listener of a change), so nothing waits for its next round. A run that fails
is logged and the next one tries again; a run still going is never started twice (`max_instances=1`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger(__name__)


class Scheduler:
    """Named periodic jobs on one APScheduler scheduler."""

    def __init__(self) -> None:
        self._scheduler = BackgroundScheduler(timezone=UTC)
        # APScheduler says at INFO when each run starts and ends: every second for the reply updater's sweep.
        logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)
        # ... and warns whenever a run is due while the last still goes: by design here (`max_instances=1`:
        # an executor's round that takes longer than its interval).
        apscheduler_log = logging.getLogger("apscheduler.scheduler")
        if not any(isinstance(f, _StillRunning) for f in apscheduler_log.filters):
            apscheduler_log.addFilter(_StillRunning())

    def every(self, name: str, task: Callable[[], Any], *, seconds: float) -> None:
        """Run `task` now (once started) and every `seconds` after (in place of a job of that name)."""
        self._scheduler.add_job(
            _logged(name, task),
            "interval",
            seconds=seconds,
            next_run_time=datetime.now(UTC),
            id=name,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,  # a run late under load still runs (once: coalesced), unannounced
            replace_existing=True,
        )

    def nudge(self, name: str) -> None:
        """Run the job `name` as soon as it is free (its interval goes on from there)."""
        if self._scheduler.running and self._scheduler.get_job(name) is not None:
            self._scheduler.modify_job(name, next_run_time=datetime.now(UTC))

    def remove(self, name: str) -> None:
        """No more runs of the job `name` (a run going on ends as it would)."""
        if self._scheduler.get_job(name) is not None:
            self._scheduler.remove_job(name)

    def start(self) -> Scheduler:
        self._scheduler.start()
        return self

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)


class _StillRunning(logging.Filter):
    """Drops APScheduler's "skipped: maximum number of running instances reached"."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances" not in str(record.msg)


def _logged(name: str, task: Callable[[], Any]) -> Callable[[], None]:
    def run() -> None:
        try:
            task()
        except Exception:  # the next run tries again
            log.exception("scheduled %s failed", name)

    run.__name__ = name
    return run
