"""An outage of the Hub loses no build: hubsim stopped while a build downloads (and restarted with its data
on the same port), and the build still ends published, without anyone typing `/retry`.

The outage must meet the download, whatever the machine's load: the bot's builders start through a
`worker_command` (as a container command would) that holds `-m builders run` until the test opens a gate,
so the build is claimed and its worker started, but it reads nothing from the Hub before the Hub is down."""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import BotProcess, E2EHub, publish_upstream, push_revision, wait_for

from bot.hubsim import HubsimServer
from state import JobStatus, Store

pytestmark = pytest.mark.slow

OUTAGE_S = 20
START_S = 180  # the worker's start under load: its interpreter, its imports, its first request
BUILD_S = 420
GATE = "open"  # the file that lets held builders run


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory whose `open` file lets `-m builders run` start (other builder commands run at once)."""
    return tmp_path_factory.mktemp("gate")


@pytest.fixture(scope="module")
def bot_settings(gate: Path) -> dict[str, Any]:
    held = gate / "python"
    held.write_text(
        "#!/bin/sh\n"
        f'if [ "$3" = run ]; then while [ ! -e {shlex.quote(str(gate / GATE))} ]; do sleep 0.2; done; fi\n'
        f'exec {shlex.quote(sys.executable)} "$@"\n'
    )
    held.chmod(0o755)
    return {"worker_command": [str(held)]}


@pytest.fixture(scope="module")
def store(bot: BotProcess) -> Iterator[Store]:
    opened = bot.store()
    yield opened
    opened.close()


def test_a_download_failing_while_the_hub_is_down_ends_published_without_retry(
    bot: BotProcess, e2e_hub: E2EHub, tiny_model: Path, store: Store, gate: Path
) -> None:
    repo, _ = publish_upstream(e2e_hub, tiny_model, "outage")
    bot.cli("watch", "add", "repo", repo, "--formats", "gptq", "--approval", "approval")
    bot.cli("webhooks", "sync", "--url", bot.url + "/webhooks/hub")
    push_revision(e2e_hub, repo, "a revision to build")
    job = wait_for(
        lambda: next((j for j in store.jobs.list(repo=repo) if j.status is JobStatus.RUNNING), None),
        60,
        "the build to start",
    )
    progress_file = Path(job.spec["work_dir"]) / "worker-1.progress"

    port, service = e2e_hub.server.port, e2e_hub.server.hub
    e2e_hub.server.stop()  # the build's worker is held at its start: its download will meet no Hub
    stopped_at = time.monotonic()
    try:
        (gate / GATE).touch()
        wait_for(lambda: "the Hub is unavailable" in _text(progress_file), START_S, "the download to fail")
        time.sleep(max(0.0, stopped_at + OUTAGE_S - time.monotonic()))
    finally:
        e2e_hub.server = HubsimServer(service, port=port).start()

    done = wait_for(lambda: (j := store.jobs.get(job.id)).terminal and j, BUILD_S, "the build to end")
    assert done.status is JobStatus.PUBLISHED, done.error
    assert not any((e.note or "").startswith("/retry") for e in store.jobs.history(job.id))
    assert [r.repo_id for r in store.releases.find(build_key=done.build_key)]


def _text(path: Path) -> str:
    """The file's text, or nothing while it does not exist yet."""
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""
