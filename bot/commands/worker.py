"""`quantbot worker`: run builds for a bot elsewhere, from its Celery queues (executor = "celery").

Needs `broker_url` and a Hub token (`HF_TOKEN`), never the bot's database. Without a GPU, `--sm` says
which SM the host's builds stand for (checkpoints are built on the CPU; engines recorded as not built).
"""

from __future__ import annotations

import click

from bot.cli import settings_from


def _ints(value: str | None) -> list[int] | None:
    if not value:
        return None
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"expected GPU indices like 0,1, got {value!r}") from None


@click.command()
@click.option("--sm", type=click.IntRange(min=10), help="The SM this host builds for (default: its GPUs').")
@click.option("--gpus", help="GPU indices to build on, e.g. 0,1 (default: every GPU; one build per GPU).")
@click.option("--queues", help="Queues to listen on (default: the SM's queue, e.g. sm90, and quantize).")
@click.option("--loglevel", default="INFO", show_default=True, help="Celery's log level.")
@click.pass_context
def command(ctx: click.Context, sm: int | None, gpus: str | None, queues: str | None, loglevel: str) -> None:
    """Take build tasks from the broker: quantize on any worker, engines on a GPU of their SM."""
    from bot.host.worker_host import run_host, run_worker, seats

    settings = settings_from(ctx)
    chosen = seats(sm, _ints(gpus))
    queue_list = [q.strip() for q in queues.split(",") if q.strip()] if queues else None
    for seat in chosen:
        click.echo(
            f"worker {seat.slot}: sm{seat.sm}, queues {', '.join(seat.queues(queue_list))}, "
            f"one build at a time, data in {settings.data_dir}",
            err=True,
        )
    if len(chosen) == 1:
        run_worker(settings, chosen[0], queue_list, loglevel)
        return
    ctx.exit(run_host(chosen, queue_list, ["--loglevel", loglevel]))
