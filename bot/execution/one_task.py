"""One build task run outside Celery, in this process: what a Hugging Face Job runs (`quantbot task`).

The task units are the Celery workers' own (`bot.execution.celery_tasks`: quantize, and one SM's engine),
called with a stand-in for the Celery task they are bound to. Their progress reports, and their result at
the end, go to stdout as one JSON line each (`{"quantbot_progress": …}`, `{"quantbot_result": …}`): the
Job's log is all the bot reads of a Job, as the result backend is for Celery. A Job is never fenced (the bot
cancels it through the Hub instead). The Hub token comes from the Job's secret `HF_TOKEN`, never printed.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from types import SimpleNamespace
from typing import Any

from bot.execution import celery_tasks
from bot.settings import Settings

PROGRESS_KEY = "quantbot_progress"
RESULT_KEY = "quantbot_result"
TASK_ENV = "QUANTBOT_TASK"  # the task's keyword arguments, as JSON (nothing secret: spec, repo, SM)


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
        emit(PROGRESS_KEY, meta | {"state": state})


def emit(key: str, value: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps({key: value}) + "\n")
    sys.stdout.flush()


def run(settings: Settings, kind: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Run the quantize or engine task unit with `kwargs`, as a worker named after this Job would."""
    name = f"hf-job-{os.environ.get('JOB_ID') or socket.gethostname()}"
    celery_tasks.register(_NoBroker(), celery_tasks.Place(settings, name, {}))
    queue = kwargs.pop("queue", kind)
    task = _JobTask(kwargs.pop("task_id", name), queue)
    unit = celery_tasks.quantize if kind == "quantize" else celery_tasks.engine
    result = unit(task, **kwargs)
    emit(RESULT_KEY, result)
    return result
