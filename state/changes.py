"""Build changes, told in-process to whoever listens: a job moved, made progress, or a release of it changed.

The store emits a `BuildChange` after the transaction that made it committed, in the thread that made it;
a listener must only take note (set a flag, queue a key) and return, since the caller may hold its own lock.
A listener that raises is logged and never undoes or blocks the change.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from state.models import JobStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildChange:
    """One change of a build: `status` is the job's status now (None when a release of the build changed);
    `before` equal to `status` means progress within the same status (`stage` says which)."""

    build_key: str
    job_id: int | None = None
    status: JobStatus | None = None
    before: JobStatus | None = None
    stage: str | None = None

    @property
    def moved(self) -> bool:
        """Whether the job's status changed (as opposed to progress, or a release)."""
        return self.status is not None and self.status is not self.before


Listener = Callable[[BuildChange], object]


class Changes:
    """The listeners of one store."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` on every change from now on; returns the call that stops it."""
        with self._lock:
            self._listeners.append(listener)

        def stop() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return stop

    def emit(self, change: BuildChange) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(change)
            except Exception:  # a listener's bug must not turn a committed change into an error
                log.exception("listener %r failed on %s", listener, change)
