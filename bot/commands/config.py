"""`quantbot config`: the settings in effect, each with where it came from; secrets redacted."""

from __future__ import annotations

import json

import click

from bot.cli import settings_from


@click.command()
@click.pass_context
def command(ctx: click.Context) -> None:
    """Print the effective settings and the source of each (default, file, env, option); secrets redacted."""
    from bot.settings import value_sources

    sources = value_sources(ctx.find_root().obj.get("config"))
    for name, value in settings_from(ctx).redacted().items():
        click.echo(f"{name} = {json.dumps(value)}  # {sources[name]}")
