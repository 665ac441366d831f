"""The README stays a guide that is true: its CLI reference is what `quantbot --help` prints, CI runs its test
command, and its first screen gets a newcomer going (the set-up, the demo, then their own model)."""

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


def test_the_guide_comes_first_and_the_reference_lives_in_docs() -> None:
    headings = re.findall(r"^## (.+)$", README, re.M)
    assert headings[:4] == ["Set-up: two commands", "The demo", "Run your own", "Documentation"], headings
    run_your_own = README.split("## Run your own")[1].split("## Documentation")[0]
    assert "### Your own model on a local Hub" in run_your_own
    assert "| `data_dir` |" not in README  # the settings' table is docs/configuration.md's
    prose = re.sub(r"```.*?```", "", README, flags=re.S)
    paragraphs = [p for p in re.split(r"\n\s*\n", prose) if not p.lstrip().startswith("|")]
    longest = max(len(p.split()) for p in paragraphs)
    assert longest < 150, f"a paragraph of {longest} words buries the guide"
