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
def command() -> None:
    """Print quantbot's version, Python's and those of the libraries it drives (or "not installed")."""
    click.echo(f"quantbot {_installed('quantbot')}")
    click.echo(f"python {platform.python_version()}")
    for name in _LIBRARIES:
        click.echo(f"{name} {_installed(name)}")
