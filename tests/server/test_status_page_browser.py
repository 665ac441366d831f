"""The bot's status page in headless Chromium during a build: the progress bar a person watches is drawn.

Debian's `chromium` is driven from Python (`--dump-dom` after the page's scripts ran, `--screenshot`); the
screenshot is saved in the `screenshots` folder (tests/conftest.py). Without chromium the test is skipped with
the command that installs it.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from state import ApprovalMode, WatchKind

pytestmark = pytest.mark.browser
SHA = "575db8b7a51b6f85eb06eee540738584589f131c"


def _chromium(chromium: str, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=90, env=os.environ | {"HOME": str(home)}
    )


def test_status_page_shows_a_running_build_with_its_progress_bar(
    make_server, chromium: str, screenshots: Path, tmp_path: Path
) -> None:
    bot = make_server(hf_endpoint="http://127.0.0.1:8765")
    store = bot.store
    store.watches.add(WatchKind.REPO, "alice/tiny-llama", formats=["gptq"], approval=ApprovalMode.AUTO)
    spec = {"repo_id": "alice/tiny-llama", "revision": SHA, "format": "gptq"}
    job, _ = store.jobs.enqueue("k1", spec, repo="alice/tiny-llama", label="alice/tiny-llama gptq")
    store.jobs.claim("host:4242:cpu", 60)
    store.jobs.heartbeat(
        job.id, "host:4242:cpu", 60, progress=0.42, message="quantize: calibrating: batch 3/8"
    )

    dom = _chromium(chromium, "--virtual-time-budget=4000", "--dump-dom", bot.url + "/", home=tmp_path).stdout
    bar = re.search(r'<progress max="1" value="([\d.]+)">', dom)
    assert bar is not None and float(bar.group(1)) == pytest.approx(0.42), dom[:2000]
    assert "<strong>quantize</strong>" in dom and "calibrating: batch 3/8" in dom and "host:4242:cpu" in dom
    assert "<title>quantbot status</title>" in dom

    shot = screenshots / "status-page-during-build.png"
    _chromium(chromium, f"--screenshot={shot}", "--window-size=1280,900", bot.url + "/", home=tmp_path)
    assert shot.is_file() and shot.stat().st_size > 10_000
