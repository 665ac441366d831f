"""`quantbot version`: the bot's version and the versions a build would record.

Reads installed distributions' metadata only, so it never imports torch.
"""

from __future__ import annotations

import platform
from importlib import metadata

import click

_LIBRARIES = (
    "huggingface_hub",
    "fastapi",
    "torch",
    "transformers",
    "nvidia-modelopt",
    "gptqmodel",
    "tensorrt_llm",
)


def _installed(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


@click.command()
@click.option("--all", "show_all", is_flag=True, help="Also list the toolchain libraries and their versions.")
def command(show_all: bool) -> None:
    """Print quantbot's version (and, with --all, the libraries it drives)."""
    click.echo(f"quantbot {_installed('quantbot')}")
    if show_all:
        click.echo(f"python {platform.python_version()}")
        for name in _LIBRARIES:
            click.echo(f"{name} {_installed(name)}")
