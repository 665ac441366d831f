"""`quantbot task quantize|engine`: run one build task here, as a Hugging Face Job does (executor "hf-jobs").

Reads the task's arguments from `QUANTBOT_TASK` (JSON) and the Hub token from `HF_TOKEN` (a Job secret);
writes its progress and its result to stdout as JSON lines, which the bot reads from the Job's log.
"""

from __future__ import annotations

import json
import os

import click

from bot.cli import settings_from
from bot.errors import UsageError


@click.command()
@click.argument("kind", type=click.Choice(["quantize", "engine"]))
@click.pass_context
def command(ctx: click.Context, kind: str) -> None:
    """Run one quantize or engine task with the arguments in QUANTBOT_TASK; exit 1 when it failed."""
    from bot.execution.one_task import TASK_ENV, run

    try:
        kwargs = json.loads(os.environ[TASK_ENV])
    except (KeyError, ValueError) as e:
        raise UsageError(f"{TASK_ENV} must hold the task's arguments as a JSON object ({e})") from None
    result = run(settings_from(ctx), kind, kwargs)
    record = result.get("record") or {}
    ctx.exit(1 if result.get("ok") is False or record.get("status") == "failed" else 0)
