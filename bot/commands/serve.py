"""`quantbot serve`: the webhook server, the dispatcher, the executor and the scheduler, in one process.

Runs until SIGINT or SIGTERM; then it stops taking webhooks, lets the dispatcher finish the event in hand,
stops the builds (their jobs go back to the queue and resume on the next start) and closes the database.
Without a Hub token it refuses to start: the bot could not say who it is, build, publish or reply, and would
only look healthy. `--allow-anonymous` starts it anyway (webhooks stored, the status page says why nothing
happens).
"""

from __future__ import annotations

import click

from bot.cli import settings_from
from bot.errors import UsageError

NO_TOKEN = (
    "no Hub token: set HF_TOKEN (or hf_token in the config file) to a token of the bot's account, "
    "or pass --allow-anonymous to start without one"
)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: any free port, printed once taken).",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "celery", "hf-jobs"]),
    help="Where builds run: local processes, `quantbot worker`s through the broker, or Hugging Face Jobs "
    "(default: setting).",
)
@click.option(
    "--allow-anonymous",
    is_flag=True,
    help="Start without a Hub token: webhooks are stored; nothing is built or published until one is set.",
)
@click.pass_context
def command(ctx: click.Context, host: str, port: int, executor: str | None, allow_anonymous: bool) -> None:
    """Serve the Hub webhook endpoint and run the bot: builds, publishing, polling, slash commands."""
    from bot.intake.ack import WEBHOOKS_DISABLED
    from bot.runtime import Bot, BotServer

    settings = settings_from(ctx)
    if settings.hf_token is None and not allow_anonymous:
        raise UsageError(NO_TOKEN)
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
