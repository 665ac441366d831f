"""An outage of the Hub loses no build: hubsim stopped for 20 s while a build downloads (and restarted
with its data on the same port), and the build still ends published, without anyone typing `/retry`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import BotProcess, E2EHub, publish_upstream, push_revision, wait_for

from bot.hubsim import HubsimServer
from state import JobStatus, Store

pytestmark = pytest.mark.slow

OUTAGE_S = 20
BUILD_S = 420


@pytest.fixture(scope="module")
def store(bot: BotProcess) -> Iterator[Store]:
    opened = bot.store()
    yield opened
    opened.close()


def test_a_download_failing_while_the_hub_is_down_ends_published_without_retry(
    bot: BotProcess, e2e_hub: E2EHub, tiny_model: Path, store: Store
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

    port, service = e2e_hub.server.port, e2e_hub.server.hub
    e2e_hub.server.stop()  # the builder is still starting: its download meets a Hub that is not there
    try:
        time.sleep(OUTAGE_S)
    finally:
        e2e_hub.server = HubsimServer(service, port=port).start()

    done = wait_for(lambda: (j := store.jobs.get(job.id)).terminal and j, BUILD_S, "the build to end")
    assert done.status is JobStatus.PUBLISHED, done.error
    progress = (Path(job.spec["work_dir"]) / "worker-1.progress").read_text()
    assert "the Hub is unavailable" in progress  # the outage did meet the download, and was waited out
    assert not any((e.note or "").startswith("/retry") for e in store.jobs.history(job.id))
    assert [r.repo_id for r in store.releases.find(build_key=done.build_key)]
