"""The `quantbot` entry point as a user meets it: help, version, errors as one line with an exit code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot import cli
from state import GuardFailed, JobStatus


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


def _env(tmp_path: Path, **settings: str) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("QUANTBOT_", "HF_"))}
    return env | {"QUANTBOT_DATA_DIR": str(tmp_path / "data")} | settings


def _one_line_error(result: subprocess.CompletedProcess[str], code: int, starts: str) -> None:
    assert result.returncode == code, result.stderr
    assert result.stderr.startswith(f"Error: {starts}") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_a_database_that_cannot_be_reached_is_one_line(tmp_path: Path) -> None:
    unreachable = "postgresql+psycopg://postgres@127.0.0.1:1/quantbot"  # nothing listens on port 1
    result = _run("watch", "list", env=_env(tmp_path, QUANTBOT_DATABASE_URL=unreachable))
    _one_line_error(result, 1, "database error: connection failed")


def test_a_data_dir_the_process_cannot_make_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = _run("watch", "list", env=_env(tmp_path, QUANTBOT_DATA_DIR=str(blocker / "data")))
    _one_line_error(result, 1, "")
    assert str(blocker) in result.stderr


def test_a_bad_build_recipe_stops_serve_before_it_listens(tmp_path: Path) -> None:
    env = _env(tmp_path, QUANTBOT_BUILD_RECIPE='{"calib_samples": "many"}', HF_ENDPOINT="http://127.0.0.1:1")
    result = _run("serve", "--port", "1", env=env)
    _one_line_error(result, 2, "invalid QUANTBOT_BUILD_RECIPE (build_recipe): calib_samples:")
    unknown = _run("serve", env=_env(tmp_path, QUANTBOT_BUILD_VALIDATION='{"eval_tokenz": 5}'))
    _one_line_error(unknown, 2, "invalid QUANTBOT_BUILD_VALIDATION (build_validation): eval_tokenz:")


def test_log_level_from_the_settings_applies_to_the_command(tmp_path: Path) -> None:
    code = (
        "import logging, sys; from bot.cli import main\n"
        "try:\n main(['config'])\nexcept SystemExit: pass\n"
        "print(logging.getLevelName(logging.getLogger().level), file=sys.stderr)"
    )
    config = tmp_path / "q.toml"
    config.write_text('log_level = "debug"\n')
    env = _env(tmp_path, QUANTBOT_CONFIG=str(config))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert done.stderr.strip().splitlines()[-1] == "DEBUG"
    assert 'log_level = "DEBUG"' in done.stdout


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        (
            GuardFailed("job", 7, {JobStatus.QUEUED}, JobStatus.RUNNING),
            1,
            "the job or release changed meanwhile",
        ),
        (PermissionError(13, "Permission denied", "/srv/quantbot"), 1, "Permission denied: /srv/quantbot"),
    ],
)
def test_other_libraries_errors_are_one_line_with_an_exit_code(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    error: Exception,
    code: int,
    line: str,
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(cli.cli, "main", fail)
    monkeypatch.delenv("QUANTBOT_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exited:
        cli.main(["version"])
    assert exited.value.code == code
    assert capsys.readouterr().err.startswith(f"Error: {line}")

    monkeypatch.setenv("QUANTBOT_DEBUG", "1")
    with pytest.raises(type(error)):
        cli.main(["version"])


def test_a_bug_is_not_disguised_as_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli.cli, "main", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        cli.main(["version"])


@pytest.mark.parametrize(("result", "code"), [({"ok": False, "error": "oom"}, 1), ({"ok": True}, None)])
def test_quantbot_task_exits_1_when_its_build_failed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, result: dict[str, object], code: int | None
) -> None:
    """A Job's stage (COMPLETED or ERROR) is its command's exit code: `ctx.exit(1)` must reach the process."""
    from bot.host import one_task
    from builders.spec import BuildSpec, TaskRequest, TaskResult

    spec = BuildSpec(local_dir=tmp_path, format="gptq", work_dir=tmp_path / "w", output_dir=tmp_path / "o")
    request = TaskRequest(job_id=1, kind="quantize", queue="cpu-basic", spec=spec, repo_id="bot/m")
    monkeypatch.setattr(one_task, "run", lambda *a, **k: TaskResult.model_validate(result))
    monkeypatch.setenv(one_task.TASK_ENV, request.model_dump_json())
    monkeypatch.setenv("QUANTBOT_DATA_DIR", str(tmp_path))
    with pytest.raises(SystemExit) as exited:
        cli.main(["task", "quantize"])
        raise SystemExit(None)  # returned: exit 0
    assert exited.value.code == code
