"""The executor interface: what the rest of the bot sees of where builds run.

An executor claims queued jobs from the store itself and hears of new, retried, cancelled and built jobs from
the store's change listeners (`state.changes`), so nothing needs to tell it about a job. It moves jobs only
through `state.lifecycle.JobLifecycle`. `bot.execution.local.LocalExecutor` runs builds in processes on this
machine; `bot.execution.orchestrator.Orchestrator` sends them elsewhere through a transport. Both run their
rounds with `Rounds`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from state import BuildChange, Changes, JobStatus

log = logging.getLogger(__name__)


class Executor(Protocol):
    """Where jobs run."""

    def start(self) -> Executor:
        """Give back what a previous run left leased, then build and publish until `stop`."""
        ...

    def stop(self, timeout: float = ..., *, drain: bool = ...) -> None:
        """Stop the builds (their jobs go back to the queue, to resume on the next start); `drain`: a build
        may first finish the stage it is in (`shutdown_grace_s`)."""
        ...

    def poll(self) -> None:
        """Advance without blocking: start jobs on free slots, record progress, finish exited builds."""
        ...

    def busy(self) -> bool:
        """Whether a build is running."""
        ...


class Rounds:
    """An executor's rounds: `poll` in a thread of its own every `poll_s`, at once when the store tells of a
    queued or cancelled job, until stopped (and, with `busy`, until nothing runs any more)."""

    def __init__(
        self, name: str, poll: Callable[[], None], poll_s: float, busy: Callable[[], bool] | None = None
    ) -> None:
        self.name = name
        self.poll = poll
        self.poll_s = poll_s
        self.busy = busy
        self.stopping = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._cancelled: set[int] = set()
        self._thread: threading.Thread | None = None
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
            self._wake.set()

    def cancelled(self) -> set[int]:
        """The jobs cancelled since the last call."""
        with self._lock:
            taken, self._cancelled = self._cancelled, set()
        return taken

    def start(self) -> None:
        self.stopping.clear()
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self.stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None

    def _loop(self) -> None:
        while not (self.stopping.is_set() and (self.busy is None or not self.busy())):
            try:
                self.poll()
            except Exception:  # the store or the transport failed this round; the next round tries again
                log.exception("%s: a round failed", self.name)
            self._wake.wait(self.poll_s)
            self._wake.clear()
