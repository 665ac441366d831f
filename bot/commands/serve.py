"""`quantbot serve`: the webhook server, the dispatcher, the executor and the scheduler, in one process.

Runs until SIGINT or SIGTERM; then it stops taking webhooks, lets the dispatcher finish the event in hand,
stops the builds (their jobs go back to the queue and resume on the next start) and closes the database.
"""

from __future__ import annotations

import click

from bot.cli import settings_from


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
    help="Port to listen on (0: any free port, printed once taken).",
)  # fmt: skip
@click.option(
    "--executor",
    type=click.Choice(["local", "celery", "hf-jobs"]),
    help="Where builds run: local processes, `quantbot worker`s through the broker, or Hugging Face Jobs "
    "(default: setting).",
)
@click.pass_context
def command(ctx: click.Context, host: str, port: int, executor: str | None) -> None:
    """Serve the Hub webhook endpoint and run the bot: builds, publishing, polling, slash commands."""
    from bot.intake.server import WEBHOOKS_DISABLED
    from bot.runtime import Bot, BotServer

    settings = settings_from(ctx)
    if executor is not None:
        settings = settings.model_copy(update={"executor": executor})
    bot = Bot.assemble(settings)
    if settings.webhook_secret is None:
        click.echo(f"warning: {WEBHOOKS_DISABLED}; the poller still finds new revisions", err=True)

    def started(server: BotServer) -> None:
        name = bot.options.bot_user or "(named by the Hub once it answers)"
        click.echo(
            f"quantbot {name} serving on {server.url}: status page {server.url}/ · "
            f"webhooks POST {server.url}/webhooks/hub"
        )

    BotServer(bot, host, port).serve_forever(on_started=started)
