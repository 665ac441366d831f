"""`quantbot config`: the settings in effect, as TOML-like lines, with secrets shown only as set."""

from __future__ import annotations

import json

import click

from bot.cli import settings_from


@click.command()
@click.pass_context
def command(ctx: click.Context) -> None:
    """Print the effective settings (file, environment, defaults); secrets are redacted."""
    for name, value in settings_from(ctx).redacted().items():
        click.echo(f"{name} = {json.dumps(value)}")
