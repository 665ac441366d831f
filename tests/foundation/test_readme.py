"""The README stays true: its CLI reference is what `quantbot --help` prints, and CI runs its test command."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from bot.cli import cli

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _normalise(text: str) -> str:
    return " ".join(text.split())


def test_cli_reference_matches_help() -> None:
    block = re.search(r"```text\n(Usage: quantbot .*?)```", README, re.S)
    assert block, "README has no CLI reference block"
    help_text = CliRunner().invoke(cli, ["--help"], prog_name="quantbot", terminal_width=80).output
    assert _normalise(block.group(1)) == _normalise(help_text)


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    commands = re.findall(r"```bash\n(.*?)\n```", README, re.S)
    test_command = next(c for c in commands if "pytest" in c)
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_the_configuration_table_documents_every_setting() -> None:
    from bot.settings import Settings

    table = [line for line in README.splitlines() if line.startswith("| `")]
    missing = [name for name in Settings.model_fields if not any(f"`{name}`" in row for row in table)]
    assert not missing, f"README's configuration table lacks {missing}"
