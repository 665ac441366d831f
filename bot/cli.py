"""The `quantbot` command: a thin group that loads each command's module only when it runs.

Lazy loading keeps `quantbot --help` fast and keeps one command's heavy imports out of the others.
Errors become one line on stderr with an exit code: quantbot's own per kind (`QuantbotError.exit_code`),
those of the libraries below it by `_FOREIGN_ERRORS`; set `QUANTBOT_DEBUG=1` to see the traceback instead.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from bot.errors import QuantbotError

# name, module under bot.commands, one-line help (shown by --help without importing the module)
_COMMANDS: list[tuple[str, str, str]] = [
    ("version", "version", "Print quantbot's version and the versions of the libraries it drives."),
    ("config", "config", "Print the settings in effect (file, environment, defaults) with secrets redacted."),
    ("hubsim", "hubsim", "Run hubsim, the local Hugging Face Hub emulator used by the demo and the tests."),
    (
        "plan",
        "plan",
        "Show which quantized formats a model is eligible for on each GPU architecture, and why.",
    ),
    ("build", "build", "Quantize a model into one format in a worker process and write its manifest."),
    ("serve", "serve", "Run the bot: webhook server, builds, publishing, poller and slash commands."),
    ("worker", "worker", 'Take build tasks from the Celery broker on a GPU host (executor = "celery").'),
    ("task", "task", "Run one build task (quantize or one SM's engine) here, as a Hugging Face Job does."),
    ("watch", "watch", "Add, list or remove the upstream models the bot follows."),
    ("webhooks", "webhooks", "Register or update the bot's webhook on the Hub for the watch list."),
    ("demo", "demo", "Watch the bot release a model by webhook and by slash command, offline, on hubsim."),
    ("publish", "publish", "Publish a finished build as a release repo or a pull request; prints its URL."),
]


class _LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, module, _ in _COMMANDS if _module_exists(module)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        for name, module, short_help in _COMMANDS:
            if name == cmd_name and _module_exists(module):
                command: click.Command = importlib.import_module(f"bot.commands.{module}").command
                command.short_help = short_help
                return command
        return None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_) for name, module, help_ in _COMMANDS if _module_exists(module)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _module_exists(module: str) -> bool:
    return (Path(__file__).parent / "commands" / f"{module}.py").is_file()


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="QUANTBOT_CONFIG",
    help="TOML settings file (keys as in docs/configuration.md).",
)
@click.pass_context
def cli(ctx: click.Context, config: Path | None) -> None:
    """quantbot: releases quantized builds of Hugging Face models (ModelOpt, GPTQ, TensorRT-LLM)."""
    ctx.obj = {"config": config}


def settings_from(ctx: click.Context) -> Any:
    """The settings for this invocation (the `--config` file, the environment, the defaults); their
    `log_level` applies from here on."""
    from bot.settings import load_settings

    root = ctx.find_root()
    if "settings" not in root.obj:
        root.obj["settings"] = load_settings(root.obj.get("config"))
        logging.getLogger().setLevel(root.obj["settings"].log_level)
    return root.obj["settings"]


# Errors of the libraries quantbot stands on that a user can meet (a database that cannot be reached, a job
# changed by someone else meanwhile, a file or folder the process may not use): (module that defines the
# class, class name, what the line starts with, exit code). Looked up by module so `--help` imports none.
_FOREIGN_ERRORS: list[tuple[str, str, str, int]] = [
    ("sqlalchemy.exc", "SQLAlchemyError", "database error", 1),
    ("state.errors", "GuardFailed", "the job or release changed meanwhile", 1),
]


def _one_line(error: Exception) -> tuple[str, int] | None:
    """The line and exit code for an error quantbot does not raise itself; None for a real bug."""
    for module, name, what, code in _FOREIGN_ERRORS:
        kind = getattr(sys.modules.get(module), name, None)
        if kind is not None and isinstance(error, kind):
            detail = str(getattr(error, "orig", None) or error).strip().splitlines()
            return f"{what}: {detail[0] if detail else type(error).__name__}", code
    if isinstance(error, OSError):
        where = f": {error.filename}" if error.filename else ""
        return f"{error.strerror or error}{where}", 1
    return None


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the group and turn quantbot's errors into one line and an exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        code = cli.main(args=argv, prog_name="quantbot", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except QuantbotError as e:
        if os.environ.get("QUANTBOT_DEBUG"):
            raise
        click.echo(f"Error: {e}", err=True)
        sys.exit(e.exit_code)
    except Exception as e:
        described = _one_line(e)
        if described is None or os.environ.get("QUANTBOT_DEBUG"):
            raise
        click.echo(f"Error: {described[0]}", err=True)
        sys.exit(described[1])
    if isinstance(code, int) and code:  # `ctx.exit(n)`, which click returns rather than raises here
        sys.exit(code)
