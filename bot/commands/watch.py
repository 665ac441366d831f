"""`quantbot watch add|list|remove`: the upstreams the bot follows, and what it builds for each.

A watch follows changes made after it is added (webhooks and the poller); `/quantize` builds the current
revision on demand. After changing watches, run `quantbot webhooks sync` so the Hub sends their events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import click

from bot.cli import settings_from
from bot.eligibility.targets import parse_sms
from bot.errors import UsageError
from builders.spec import FORMATS

if TYPE_CHECKING:
    from state import Store, Watch

_KINDS = ("repo", "author", "base_model")


def _store(ctx: click.Context) -> Store:
    """The bot's database (state is imported here, not at the top, so that `--help` stays fast)."""
    from bot.intake.server import open_configured_store

    return open_configured_store(settings_from(ctx))


@click.group()
def command() -> None:
    """Follow upstream models: a repo, every repo of an author, or new fine-tunes of a base model."""


@command.command("add")
@click.argument("kind", type=click.Choice(_KINDS))
@click.argument("target")
@click.option(
    "--formats", help=f"Comma-separated formats to build (default: every eligible one): {', '.join(FORMATS)}."
)
@click.option("--sm", "sms", help="Comma-separated SMs to build for (default: every target SM).")
@click.option(
    "--approval",
    type=click.Choice(["auto", "approval"]),
    help="Publish at once (auto) or through a PR a maintainer merges (default: the `approval` setting).",
)
@click.option(
    "--kv-cache",
    type=click.Choice(["none"]),
    help="Leave the KV cache unquantized (default: FP8 where TensorRT-LLM's matrices mark it for the model).",
)
@click.option(
    "--cooldown",
    type=click.IntRange(min=0),
    help="Minutes a new revision must stay the newest before it is built (default: `cooldown_minutes`).",
)
@click.option(
    "--dashboard", is_flag=True, help="Keep one discussion on each watched upstream saying where it stands."
)
@click.option(
    "--demand",
    is_flag=True,
    help="base_model only: build the fine-tunes with the most downloads and likes, a few a month.",
)
@click.option(
    "--budget",
    type=click.IntRange(min=0),
    help="With --demand: fine-tunes built per month (default: `demand_monthly_budget`).",
)
@click.pass_context
def add(
    ctx: click.Context,
    kind: str,
    target: str,
    formats: str | None,
    sms: str | None,
    approval: str | None,
    kv_cache: Literal["none"] | None,
    cooldown: int | None,
    dashboard: bool,
    demand: bool,
    budget: int | None,
) -> None:
    """Watch TARGET (owner/name for repo and base_model, a user or org name for author)."""
    from state import ApprovalMode, WatchKind

    chosen = [f.strip().lower() for f in (formats or "").split(",") if f.strip()]
    if unknown := [f for f in chosen if f not in FORMATS]:
        raise UsageError(f"--formats: unknown format(s) {', '.join(unknown)}; known: {', '.join(FORMATS)}")
    if (kind == "author") == ("/" in target):
        raise UsageError(
            f"{kind} watches take {'a user or org name' if kind == 'author' else 'a repo id owner/name'}"
        )
    if (demand or budget is not None) and kind != "base_model":
        raise UsageError("--demand and --budget are for base_model watches")
    if budget is not None and not demand:
        raise UsageError("--budget is the monthly budget of a --demand watch: add --demand")
    store = _store(ctx)
    try:
        watch = store.watches.add(
            WatchKind(kind),
            target,
            formats=chosen,
            sms=parse_sms(sms) if sms else [],
            approval=ApprovalMode(approval or settings_from(ctx).approval),
            kv_cache=kv_cache,
            cooldown_minutes=cooldown,
            dashboard=dashboard,
            demand=demand,
            monthly_budget=budget,
        )
    finally:
        store.close()
    click.echo(f"watching {watch.kind.value} {watch.target}: {_what(watch)}")


@command.command("list")
@click.pass_context
def list_(ctx: click.Context) -> None:
    """List the watches."""
    store = _store(ctx)
    try:
        watches = store.watches.list()
    finally:
        store.close()
    if not watches:
        click.echo("no watches (add one with: quantbot watch add repo OWNER/NAME)")
    for watch in watches:
        click.echo(f"{watch.kind.value:<10} {watch.target:<40} {_what(watch)}")


@command.command("remove")
@click.argument("kind", type=click.Choice(_KINDS))
@click.argument("target")
@click.pass_context
def remove(ctx: click.Context, kind: str, target: str) -> None:
    """Stop watching TARGET."""
    from state import WatchKind

    store = _store(ctx)
    try:
        removed = store.watches.remove(WatchKind(kind), target)
    finally:
        store.close()
    if not removed:
        raise UsageError(f"no {kind} watch on {target}")
    click.echo(f"no longer watching {kind} {target}")


def _what(watch: Watch) -> str:
    formats = ", ".join(watch.formats) or "every eligible format"
    sms = ", ".join(f"sm{s}" for s in watch.sms) or "every target SM"
    kv = "; KV cache not quantized" if watch.kv_cache == "none" else ""
    cooldown = "" if watch.cooldown_minutes is None else f"; cooldown {watch.cooldown_minutes} min"
    board = "; dashboard" if watch.dashboard else ""
    budget = "default" if watch.monthly_budget is None else watch.monthly_budget
    wanted = f"; demand, budget {budget} a month" if watch.demand else ""
    return f"{formats}; {sms}; {watch.approval.value}{kv}{cooldown}{board}{wanted}"
