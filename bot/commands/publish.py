"""`quantbot publish <build dir>`: release a finished build as a repo or a pull request; prints its URL.

The mode and the approval mode decide where it goes (see `bot.publishing.publisher`); the outcome goes to
stderr as
one line, the URL alone to stdout, so scripts can capture it.
"""

from __future__ import annotations

from pathlib import Path

import click

from bot.cli import settings_from
from bot.errors import UsageError


@click.command()
@click.argument("build_dir", type=click.Path(path_type=Path))
@click.option(
    "--mode",
    type=click.Choice(["repo", "pr"]),
    help="repo: the release repo in the bot's namespace (default); pr: a pull request on an existing repo.",
)
@click.option("--repo", "repo_id", help="Release repo id (default: from the configured name template).")
@click.option(
    "--approval",
    type=click.Choice(["auto", "approval"]),
    help="auto: publish straight to the repo; approval: always through a PR (default: from the settings).",
)
@click.pass_context
def command(
    ctx: click.Context, build_dir: Path, mode: str | None, repo_id: str | None, approval: str | None
) -> None:
    """Publish BUILD_DIR (a folder holding a successful build's manifest.json)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    from bot.publishing.publisher import Publisher

    if repo_id is not None:
        try:
            validate_repo_id(repo_id)
        except HFValidationError as e:
            raise UsageError(f"--repo {repo_id!r} is not a valid repo id: {e}") from None
        if "/" not in repo_id:
            raise UsageError(f"--repo {repo_id!r} must be namespace/name")
    settings = settings_from(ctx)
    if settings.token() is None:
        raise UsageError("publishing needs a Hub token: set HF_TOKEN or QUANTBOT_HF_TOKEN")
    result = Publisher.from_settings(settings).publish(
        build_dir,
        mode=mode,  # type: ignore[arg-type]
        repo_id=repo_id,
        approval=approval,  # type: ignore[arg-type]
    )
    closed = ", ".join(f"#{n}" for n in result.superseded)
    detail = f" (closed superseded PRs {closed})" if closed else ""
    click.echo(f"{result.status.value}: {result.message}{detail}", err=True)
    click.echo(result.url)
