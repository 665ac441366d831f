"""The executor interface: what the rest of the bot sees of where builds run.

An executor claims queued jobs from the store itself and hears of new, retried, cancelled and built jobs from
the store's change listeners (`state.changes`), so nothing needs to tell it about a job. It moves jobs only
through `state.lifecycle.JobLifecycle`. `bot.execution.local.LocalExecutor` runs builds in processes on this
machine; a queue-based executor (DESIGN.md, decision 5) implements the same calls.
"""

from __future__ import annotations

from typing import Protocol


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
