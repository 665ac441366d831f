"""One build task run outside Celery, in this process: what a Hugging Face Job runs (`quantbot task`).

The task units are the Celery workers' own (`bot.host.tasks`: quantize, and one SM's engine),
called with a stand-in for the Celery task they are bound to. Their progress reports, and their result at
the end, go to stdout as one JSON line each (`{"quantbot_progress": …}`, `{"quantbot_result": …}`): the
Job's log is all the bot reads of a Job, as the result backend is for Celery. A failed build's own log (its
last `LOG_TAIL_LINES` lines), then why it failed, go to stderr before the result: the end of the Job's log
says why, to the bot (which quotes it) and to anyone reading the Job on the Hub. A Job is never fenced (the
bot cancels it through the Hub instead). The Hub token comes from the Job's secret `HF_TOKEN`, never printed.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from types import SimpleNamespace
from typing import Any

from bot.host import tasks
from bot.settings import Settings
from builders.spec import TaskRequest, TaskResult

PROGRESS_KEY = "quantbot_progress"
RESULT_KEY = "quantbot_result"
TASK_ENV = "QUANTBOT_TASK"  # the task's `TaskRequest`, as JSON (nothing secret: spec, repo, SM)
LOG_TAIL_LINES = 20


class _NoBroker:
    """The parts of a Celery app the task units touch: the fence (never set for a Job) and registration."""

    backend = SimpleNamespace(client=SimpleNamespace(exists=lambda _key: 0))

    @staticmethod
    def task(**_: Any) -> Any:
        return lambda function: function


class _JobTask:
    """Stands for the bound Celery task: an id, where it came from, and `update_state` to stdout."""

    app = _NoBroker()

    def __init__(self, task_id: str, queue: str) -> None:
        self.request = SimpleNamespace(id=task_id, delivery_info={"routing_key": queue})

    def update_state(self, state: str, meta: dict[str, Any]) -> None:
        emit(PROGRESS_KEY, meta)


def emit(key: str, value: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps({key: value}) + "\n")
    sys.stdout.flush()


def run(settings: Settings, request: TaskRequest) -> TaskResult:
    """Run the request's quantize or engine task unit, as a worker named after this Job would."""
    name = f"hf-job-{os.environ.get('JOB_ID') or socket.gethostname()}"
    tasks.register(_NoBroker(), tasks.Place(settings, name, {}))
    task = _JobTask(name, request.queue)
    unit = tasks.quantize if request.kind == "quantize" else tasks.engine
    result = TaskResult.model_validate(unit(task, request.model_dump(mode="json")))
    if result.failed:
        for log in tasks.build_logs(settings):
            lines = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
            sys.stderr.write("".join(f"{line}\n" for line in lines))
        why = result.error or (result.record.reason if result.record else "")
        sys.stderr.write(f"the {request.kind} task failed: {why}\n")
        sys.stderr.flush()
    emit(RESULT_KEY, result.model_dump(mode="json"))
    return result
