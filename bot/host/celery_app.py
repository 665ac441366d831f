"""The Celery application the bot and its workers share: broker, serialisation, delivery rules, queues.

DESIGN.md, decision 5: one queue per SM (`sm90`, `sm89`, …) plus `quantize`, a Redis broker that is also
the result backend (workers report progress through it; they never see the bot's database), JSON only (no
pickle in a task queue), a task acknowledged only once it has finished (`acks_late`) and given back when
the process running it dies (`reject_on_worker_lost`), one task reserved at a time (prefetch 1), and a
visibility timeout longer than the longest stage, so the broker never hands a running task to a second
worker while the first is still on it.

Tasks are sent by name, so the bot never imports the worker's side (`bot.host.tasks`).
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from bot.settings import Settings

QUANTIZE_QUEUE = "quantize"
QUANTIZE_TASK = "quantbot.quantize"
ENGINE_TASK = "quantbot.engine"
PROGRESS = "PROGRESS"  # the custom state a running task reports its stage in


def sm_queue(sm: int) -> str:
    """The queue of the workers whose GPU is `sm` (an engine runs only on the SM it was built on)."""
    return f"sm{sm}"


def make_app(settings: Settings) -> Celery:
    """The Celery app for `broker_url` (never logged: Celery masks its password in what it prints)."""
    url = settings.broker()
    transport: dict[str, Any] = {
        "visibility_timeout": settings.broker_visibility_timeout_s,
        "socket_connect_timeout": 3,
        "socket_timeout": 10,
    }
    app = Celery("quantbot", broker=url, backend=url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        event_serializer="json",
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_track_started=True,
        task_default_queue=QUANTIZE_QUEUE,
        broker_transport_options=transport,
        result_backend_transport_options=transport,
        redis_socket_connect_timeout=3,
        redis_socket_timeout=10,
        result_expires=7 * 24 * 3600,
        result_extended=True,
        # The bot looks before it sends (`broker_answers`); a send that fails still fails fast, and the job
        # goes back to the store's queue instead of blocking the executor's loop.
        task_publish_retry=False,
        broker_connection_timeout=3,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    return app


def broker_answers(app: Celery, timeout: float = 2.0) -> bool:
    """Whether the broker takes connections now (one short try, no retries)."""
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout)
        return True
    except Exception:  # kombu raises the transport's own errors (redis, socket, OSError)
        return False


FENCE_PREFIX = "quantbot:revoked:"
FENCE_TTL_S = 30 * 24 * 3600


def fence(app: Celery, task_ids: list[str]) -> None:
    """Mark tasks as never to run, in the result backend, where a worker started later still sees it.

    Celery's own revoke reaches only the workers listening now; a message the broker redelivers later (its
    worker died, the visibility timeout passed) would run again without this.
    """
    client = app.backend.client
    for task_id in task_ids:
        client.set(FENCE_PREFIX + task_id, "1", ex=FENCE_TTL_S)


def fenced(app: Celery, task_id: str) -> bool:
    """Whether the bot revoked this task (a cancel, or a task it sent again after its worker was lost)."""
    return bool(app.backend.client.exists(FENCE_PREFIX + task_id))
