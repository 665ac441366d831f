"""`quantbot hubsim`: serve the local Hub emulator in the foreground.

It publishes the default calibration dataset's stand-in (bot/hubsim/datasets.py), so that builds with the
default calibration work against it, and prints the endpoint, the user and its token (a token of this
local emulator, not a secret of the user: printing it is the point) and how to point huggingface_hub at it.
"""

from __future__ import annotations

from pathlib import Path

import click

from bot.errors import UsageError
from bot.hubsim import HubService, HubsimServer, create_hub
from bot.hubsim.datasets import publish_calibration_dataset
from bot.hubsim.errors import ApiError
from builders.spec import DEFAULT_CALIBRATION


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port", default=8765, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on."
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep repos, users and webhooks in this directory (survives a restart); default: in memory.",
)
@click.option(
    "--users",
    "users_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="JSON or TOML file: users = [{name, token, plan?}], orgs = [{name, members}].",
)
@click.option("--user", help="Name of the single user when there is no users file (default: hubsim-user).")
@click.option("--token", help="Token of that user (default: a new random one, kept in --data).")
@click.option("--webhook", "webhook_url", help="Deliver every event of every repo to this URL.")
@click.option("--webhook-secret", help="Sent as X-Webhook-Secret with each delivery to --webhook.")
@click.option(
    "--rate-limits/--no-rate-limits",
    default=True,
    show_default=True,
    help="Enforce the Hub's rate limits (per user and plan, 5-minute windows, 429 with RateLimit headers).",
)
@click.option(
    "--quota",
    "quotas",
    multiple=True,
    metavar="[PLAN.]BUCKET=N",
    help="A quota per 5 minutes instead of the Hub's (buckets api, resolvers, pages; plan free unless "
    "named, e.g. pro.api=3000, anonymous.pages=50). Repeatable.",
)
def command(
    host: str,
    port: int,
    data_dir: Path | None,
    users_file: Path | None,
    user: str | None,
    token: str | None,
    webhook_url: str | None,
    webhook_secret: str | None,
    rate_limits: bool,
    quotas: tuple[str, ...],
) -> None:
    """Run hubsim, a local Hugging Face Hub that the huggingface_hub client works against unchanged."""
    if users_file is not None and (user or token):
        raise UsageError("give either --users FILE or --user/--token, not both")
    if webhook_secret is not None and webhook_url is None:
        raise UsageError("--webhook-secret needs --webhook URL")
    hub = create_hub(data_dir, users_file, user, token)
    hub.rate_limits.enabled = rate_limits
    for quota in quotas:
        _set_quota(hub, quota)
    publish_calibration_dataset(hub)
    if webhook_url is not None:
        _register_cli_hook(hub, webhook_url, webhook_secret)
    server = HubsimServer(hub, host, port).start()
    _print_banner(server, data_dir)
    server.serve_forever()
    click.echo("hubsim stopped.")


def _set_quota(hub: HubService, text: str) -> None:
    """`[PLAN.]BUCKET=N` from `--quota`."""
    key, _, value = text.partition("=")
    plan, _, bucket = key.rpartition(".")
    try:
        hub.rate_limits.set_quota(bucket.strip(), int(value), plan=plan.strip() or None)
    except (ValueError, ApiError) as e:
        reason = e.message if isinstance(e, ApiError) else "N must be a whole number"
        raise UsageError(f"--quota {text}: {reason} (expected [PLAN.]BUCKET=N)") from e


def _register_cli_hook(hub: HubService, url: str, secret: str | None) -> None:
    """Watch everything with the CLI's hook, unless a restart with the same --data already has it."""
    for hook in hub.webhooks.hooks.values():
        if hook.owner is None and hook.url == url and not hook.watched:
            hook.secret = secret
            hub.save_meta()
            return
    try:
        hub.register_webhook(url, secret)
    except ApiError as e:
        raise UsageError(f"--webhook: {e.message}") from e


def _print_banner(server: HubsimServer, data_dir: Path | None) -> None:
    hub = server.hub
    click.echo(f"hubsim: a local Hugging Face Hub at {server.url}")
    click.echo(f"  state: {data_dir if data_dir else 'in memory (use --data DIR to keep it)'}")
    limits = hub.rate_limits
    if limits.enabled:
        free = limits.plans["free"]
        click.echo(
            f"  rate limits: on, per 5 minutes for a free user {free.api} API, {free.resolvers} resolver, "
            f"{free.pages} page requests (--no-rate-limits turns them off)"
        )
    else:
        click.echo("  rate limits: off")
    for user in hub.users.users.values():
        click.echo(f"  user {user.name} ({user.role}) token {user.token}")
    for org in hub.users.orgs.values():
        click.echo(f"  org {org.name}: {', '.join(org.members) or 'no members'}")
    click.echo(f"  dataset {DEFAULT_CALIBRATION} (a small stand-in: the default calibration set)")
    for hook in hub.webhooks.hooks.values():
        watching = "everything" if not hook.watched else hook.watched
        click.echo(f"  webhook {hook.id} -> {hook.url} (watching {watching})")
    first = server.default_user
    click.echo("Use it from another shell:")
    click.echo(f"  export HF_ENDPOINT={server.url} HF_TOKEN={first.token}")
    click.echo("  python -c \"from huggingface_hub import HfApi; print(HfApi().whoami()['name'])\"")
    click.echo("Press Ctrl+C to stop.")
