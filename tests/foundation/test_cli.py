"""The `quantbot` entry point as a user meets it: help, version, errors as one line with an exit code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bot import cli


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from bot.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_help_lists_every_available_command_with_one_line() -> None:
    result = _run("--help")
    assert result.returncode == 0, result.stderr
    listed = [name for name, module, _ in cli._COMMANDS if cli._module_exists(module)]
    assert "version" in listed and "config" in listed
    for name in listed:
        assert any(line.strip().startswith(name + " ") for line in result.stdout.splitlines()), name


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys; from bot.cli import main\n"
        "try:\n main(['--help'])\nexcept SystemExit: pass\n"
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().endswith("False")


def test_version() -> None:
    result = _run("version")
    assert result.returncode == 0
    assert result.stdout.startswith("quantbot ")


def test_unknown_command_is_a_usage_error() -> None:
    result = _run("frobnicate")
    assert result.returncode == 2
    assert "No such command" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_config_file_is_one_line_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("policy = [\n")
    result = _run("--config", str(config), "config")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "not valid TOML" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_redacts_secrets(tmp_path: Path) -> None:
    import os

    env = dict(os.environ, HF_TOKEN="hf_do_not_print", QUANTBOT_WEBHOOK_SECRET="whsec_do_not_print")
    result = _run("config", env=env)
    assert result.returncode == 0, result.stderr
    assert "hf_do_not_print" not in result.stdout and "whsec_do_not_print" not in result.stdout
    assert 'hf_token = "***"' in result.stdout
