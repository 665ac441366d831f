"""The test command passes on an ordinary machine: the caller's settings change no outcome, and the browser
tests skip (saying why and how to install Chromium) where it is missing, except where CI requires them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _pytest(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """pytest in a fresh interpreter, as a developer runs it, with `env` on top of this environment."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=240, env=os.environ | env,
    )  # fmt: skip


def test_a_developers_own_settings_reach_no_test(tmp_path: Path) -> None:
    """Settings a developer keeps in the shell (a data dir, a policy, a token, a config file, a Hub) are
    removed before any test reads them; the session's own variables (its hubsim) are in place."""
    config = tmp_path / "mine.toml"
    config.write_text('policy = "permissive"\ntarget_sms = [75]\n')
    done = _pytest(
        "tests/foundation/test_settings.py", "tests/foundation/test_cli.py",
        QUANTBOT_DATA_DIR=str(tmp_path / "mine"), QUANTBOT_POLICY="permissive", QUANTBOT_TARGET_SMS="75",
        QUANTBOT_CONFIG=str(config), QUANTBOT_LOG_LEVEL="DEBUG", HF_TOKEN="hf_developer_token",
        HF_ENDPOINT="http://127.0.0.1:9", HUGGINGFACE_HUB_CACHE=str(tmp_path / "cache"),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    assert not (tmp_path / "mine").exists() and not (tmp_path / "cache").exists()


def test_browser_tests_skip_with_the_install_command_where_chromium_is_missing() -> None:
    browser_tests = ("tests/browser", "tests/server/test_status_page_browser.py")
    missing = {"QUANTBOT_TEST_CHROMIUM": "/nonexistent/chromium", "QUANTBOT_TEST_BROWSER": ""}
    done = _pytest(*browser_tests, **missing)
    assert done.returncode == 0, done.stdout[-3000:]
    assert " error" not in done.stdout and " passed" not in done.stdout
    skips = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED")]
    assert skips and all("need chromium: install it with bash .ci/browser-deps" in s for s in skips), skips

    required = _pytest(*browser_tests, **missing | {"QUANTBOT_TEST_BROWSER": "required"})
    assert required.returncode == 1 and " skipped" not in required.stdout
    assert "need chromium: install it with bash .ci/browser-deps" in required.stdout


def test_ci_requires_the_browser_tests() -> None:
    run = (ROOT / ".ci" / "run").read_text()
    test_command = run.index(".venv/bin/python -m pytest")
    assert 0 <= run.find("export QUANTBOT_TEST_BROWSER=required") < test_command
    assert "bash .ci/browser-deps" in run
