"""`quantbot task quantize|engine`: run one build task here, as a Hugging Face Job does (executor "hf-jobs").

Reads the task's arguments from `QUANTBOT_TASK` (JSON) and the Hub token from `HF_TOKEN` (a Job secret);
writes its progress and its result to stdout as JSON lines, which the bot reads from the Job's log.
"""

from __future__ import annotations

import os

import click

from bot.cli import settings_from
from bot.errors import UsageError


@click.command()
@click.argument("kind", type=click.Choice(["quantize", "engine"]))
@click.pass_context
def command(ctx: click.Context, kind: str) -> None:
    """Run one quantize or engine task with the arguments in QUANTBOT_TASK; exit 1 when it failed."""
    from pydantic import ValidationError

    from bot.host.one_task import TASK_ENV, run
    from builders.spec import TaskRequest

    try:
        request = TaskRequest.model_validate_json(os.environ[TASK_ENV])
    except (KeyError, ValidationError) as e:
        raise UsageError(f"{TASK_ENV} must hold the task's request as JSON ({e})") from None
    if request.kind != kind:
        raise UsageError(f"{TASK_ENV} holds a {request.kind} task, not a {kind} task")
    ctx.exit(1 if run(settings_from(ctx), request).failed else 0)
