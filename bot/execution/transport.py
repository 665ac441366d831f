"""How the orchestrator reaches the machines that run a job's tasks: send one, ask after it, cancel it.

`bot.execution.orchestrator.Orchestrator` owns everything else (claims, fan-out, fan-in, leases, lifecycle
moves); a transport only carries `TaskRequest`s out and says what became of them, in the same words for
each: processes on this machine (`local`), Celery workers (`celery_transport`) and Hugging Face Jobs
(`jobs_transport`). The protocol's own methods are those of a remote transport, whose tasks outlive the
bot: nothing to take over, stop or wait for here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from bot.retries import Cause
from builders.spec import BuildSpec, TaskPlan, TaskReport, TaskRequest, TaskResult
from state import JobTask


class Phase(StrEnum):
    """Where a task is, as its transport sees it."""

    WAITING = "waiting"  # sent, not started (queued on the broker, a Job being scheduled)
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # it answered a `TaskResult` (a failed build is a result too)
    FAILED = "failed"  # it ended without one (a bug, an error on its worker)
    LOST = "lost"  # its worker or Job is gone: sent again within `max_attempts`
    CANCELLED = "cancelled"
    STOPPED = "stopped"  # stopped with the bot (`Transport.stop`): its job goes back to the queue


@dataclass(frozen=True)
class Seen:
    """What a transport knows of one task now."""

    phase: Phase
    report: TaskReport | None = None  # a running task's latest report
    beat: str | None = None  # what changes while it is alive; None: the transport itself tells lost
    result: TaskResult | None = None
    error: str = ""
    cause: Cause = Cause.OTHER  # why a task ended without a result, as far as retrying goes
    worker: str | None = None
    where: str = ""  # who runs it, in words, for the job's progress message
    running_s: float | None = None  # set once it ended, where the transport measures it
    cost_usd: float | None = None


@dataclass(frozen=True)
class Sent:
    """A task the transport took: its id there, the queue or flavour, and where to watch it."""

    task_id: str
    queue: str
    worker: str | None = None


class TransportError(Exception):
    """The transport did not take the task: `transient` when it is down (the broker), so the job waits in
    the queue until it answers; else refused with a `cause` (the Hub's failure waits for another try, no
    flavour fails the job: `bot.retries`)."""

    def __init__(self, message: str, *, transient: bool = False, cause: Cause = Cause.PERMANENT) -> None:
        super().__init__(message)
        self.transient = transient
        self.cause = cause


class Transport(Protocol):
    """Where tasks run."""

    owner: str  # the lease holder of every job out on this transport

    def ready(self) -> bool:
        """Whether sending may be tried now (a broker that does not answer: the jobs wait in the store)."""
        ...

    def queue(self, plan: TaskPlan) -> str:
        """The queue or flavour of a planned task; `TransportError` when the plan gives none."""
        ...

    def send(self, request: TaskRequest, task_id: str) -> Sent:
        """Send one task (`task_id`: the bot's name for it, where the transport lets the sender choose)."""
        ...

    def status(self, task: JobTask) -> Seen:
        """What became of one task."""
        ...

    def cancel(self, task: JobTask) -> Seen:
        """Stop one task wherever it is, and never run it later."""
        ...

    def has_room(self) -> bool:
        """Whether one more task may be sent now (a local slot is free)."""
        return True

    def take_over(self, owner: str, task: JobTask, spec: BuildSpec) -> str | None:
        """Follow from now on a task that `owner`, an earlier run of the bot, sent and did not see end: what
        it was taken up as, in words; None where it is not this run's to take (a remote task's owner is
        the transport's, the same for every run, so there is nothing to take over)."""
        return None

    def stop(self, drain_s: float) -> float:
        """The bot is stopping: stop the tasks that end with it (after `drain_s`); how long that may take."""
        return 0.0

    def busy(self) -> bool:
        """Whether a task that ends with the bot still runs."""
        return False
