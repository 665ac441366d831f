"""The bot's one background scheduler: a run that outlasts its interval is not started twice, and that is not
reported as a problem (the reply updater's sweep runs every second and may take longer under load)."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from bot.scheduler import Scheduler


def test_a_slow_run_is_never_doubled_and_not_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    running, most = 0, 0
    lock = threading.Lock()

    def slow() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(1.2)
        with lock:
            running -= 1

    scheduler = Scheduler()
    scheduler.every("slow", slow, seconds=0.2)
    with caplog.at_level(logging.DEBUG, logger="apscheduler"):
        scheduler.start()
        time.sleep(1.5)
        scheduler.stop()
    assert most == 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
