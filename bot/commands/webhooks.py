"""`quantbot webhooks sync`: register (or update) the bot's webhook on the Hub for the watch list.

The hook watches the watched repos, the watched authors, the namespaces whose discussions take slash commands
and the bot's own namespace (where maintainers merge or close its pull requests), in the `repo` and
`discussion` domains, and posts to `<public_url>/webhooks/hub` with the configured secret. The Hub cannot
watch a base model's fine-tunes; the poller covers those.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

from bot.cli import settings_from
from bot.errors import UsageError

if TYPE_CHECKING:
    from bot.hub import Hub
    from bot.settings import Settings
    from state import Store

DOMAINS = ["repo", "discussion"]


@dataclass(frozen=True)
class Synced:
    """What `sync_webhook` did."""

    action: str  # "created", "updated" or "unchanged"
    webhook_id: str
    url: str
    watched: list[dict[str, str]]
    unwatchable: list[str]


def watched_items(
    hub: Hub, store: Store, settings: Settings, bot_user: str
) -> tuple[list[dict[str, str]], list[str]]:
    """The Hub's `watched` list for the watch list, and the watches a webhook cannot cover (base models)."""
    from state import WatchKind

    items: list[dict[str, str]] = []
    namespaces: list[str] = []
    unwatchable = []
    for watch in store.watches.list():
        if watch.kind is WatchKind.REPO:
            items.append({"type": "model", "name": watch.target})
        elif watch.kind is WatchKind.AUTHOR:
            namespaces.append(watch.target)
        else:
            unwatchable.append(f"base_model {watch.target}")
    namespaces += [*settings.command_namespaces, settings.namespace or bot_user]
    for name in dict.fromkeys(namespaces):
        items.append({"type": "org" if hub.org_members(name) is not None else "user", "name": name})
    return items, unwatchable


def sync_webhook(hub: Hub, store: Store, settings: Settings, url: str) -> Synced:
    """Create the webhook posting to `url`, or bring the existing one up to date."""
    if settings.webhook_secret is None:
        raise UsageError(
            "set webhook_secret first (QUANTBOT_WEBHOOK_SECRET): the bot refuses unsigned webhooks"
        )
    secret = settings.webhook_secret.get_secret_value()
    bot_user = str(hub.whoami()["name"])
    watched, unwatchable = watched_items(hub, store, settings, bot_user)
    mine = [hook for hook in hub.list_webhooks() if hook.url == url]
    if not mine:
        hook = hub.create_webhook(url=url, watched=watched, domains=DOMAINS, secret=secret)
        return Synced("created", hook.id, url, watched, unwatchable)
    hook = mine[0]
    current = sorted((w.type, w.name) for w in hook.watched)
    if (
        current == sorted((w["type"], w["name"]) for w in watched)
        and sorted(hook.domains or []) == sorted(DOMAINS)
        and hook.secret == secret
    ):
        return Synced("unchanged", hook.id, url, watched, unwatchable)
    hub.update_webhook(hook.id, url=url, watched=watched, domains=DOMAINS, secret=secret)
    return Synced("updated", hook.id, url, watched, unwatchable)


@click.group()
def command() -> None:
    """Manage the bot's webhook on the Hub."""


@command.command("sync")
@click.option("--url", help="Where the Hub posts (default: <public_url>/webhooks/hub from the settings).")
@click.pass_context
def sync(ctx: click.Context, url: str | None) -> None:
    """Register or update the bot's webhook for the watch list."""
    from bot.hub import Hub
    from bot.intake.server import open_configured_store

    settings = settings_from(ctx)
    if url is None:
        if not settings.public_url:
            raise UsageError("give --url, or set public_url to the address where the Hub reaches the bot")
        url = settings.public_url.rstrip("/") + "/webhooks/hub"
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--url must be an http(s) URL, not {url!r}")
    store = open_configured_store(settings)
    try:
        done = sync_webhook(Hub(endpoint=settings.hf_endpoint, token=settings.token()), store, settings, url)
    finally:
        store.close()
    click.echo(f"webhook {done.webhook_id} {done.action}: posts to {done.url}")
    for item in done.watched:
        click.echo(f"  watching {item['type']} {item['name']}")
    for what in done.unwatchable:
        click.echo(f"  not watchable by webhook (the poller covers it): {what}")
