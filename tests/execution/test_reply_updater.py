"""Replies follow their builds: the store reports a change, the updater edits the reply on hubsim."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.execution.reply_updater import ReplyUpdater
from bot.hub import Hub
from state import CommandStatus, JobStatus, Store, open_store, sqlite_url

SHA = "cd" * 20


class CountingHub:
    """The real Hub client, counting the edits it is asked for."""

    def __init__(self, hub: Hub) -> None:
        self.hub, self.edits = hub, 0

    def edit_comment(self, repo_id: str, num: int, comment_id: str, text: str) -> None:
        self.edits += 1
        self.hub.edit_comment(repo_id, num, comment_id, text)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(sqlite_url(tmp_path))
    yield opened
    opened.close()


def test_the_reply_shows_each_new_stage_and_closes_when_the_build_ends(
    hubsim, repo_factory: Callable[..., str], store: Store
) -> None:
    repo = repo_factory("replies")
    hub = Hub(endpoint=hubsim.url, token=hubsim.token)
    num = hubsim.api.create_discussion(repo, "Builds").num
    reply_id = hub.reply(repo, num, "working on it")
    job = store.jobs.enqueue("k" * 64, {"format": "fp8", "target_sms": [90], "revision": SHA}, repo=repo)[0]
    command, _ = store.commands.record(
        repo=repo, discussion_num=num, comment_id="c", author="alice", text="/quantize fp8", parsed={}
    )
    store.commands.update(
        command.id, parsed={"intro": "@alice asked for **fp8**."}, build_keys=[job.build_key],
        status=CommandStatus.REPLIED, reply_comment_id=reply_id,
    )  # fmt: skip
    counting = CountingHub(hub)
    updater = ReplyUpdater(store, counting)
    store.changes.listen(updater.on_change)

    def shown() -> str:
        details = hubsim.api.get_discussion_details(repo, num)
        return next(e.content for e in details.events if e.id == reply_id)

    store.lifecycle.claim_build("w", 60)
    store.jobs.heartbeat(job.id, "w", 60, progress=0.3, message="quantize: layer 1")
    updater.flush()
    assert "building, 30%: quantize: layer 1" in shown() and counting.edits == 1
    store.jobs.heartbeat(job.id, "w", 60, progress=0.35, message="quantize: layer 2")
    updater.flush()
    assert counting.edits == 1  # progress within a stage costs no Hub call
    store.lifecycle.built(job.id, "w", {"status": "succeeded"})
    store.lifecycle.claim_publish("w", 60)
    store.lifecycle.publish_failed(job.id, "w", "the Hub answered 500")
    updater.flush()
    assert "failed: publish failed: the Hub answered 500" in shown() and "All done." in shown()
    assert store.commands.get(command.id).status is CommandStatus.DONE
    assert store.jobs.get(job.id).status is JobStatus.FAILED
    edits = counting.edits
    store.lifecycle.retry(store.jobs.get(job.id), note="/retry")
    updater.flush()
    assert counting.edits == edits  # a closed reply follows nothing any more


def test_the_updater_thread_edits_without_anyone_flushing(hubsim, repo_factory, store: Store) -> None:
    repo = repo_factory("replies")
    hub = Hub(endpoint=hubsim.url, token=hubsim.token)
    num = hubsim.api.create_discussion(repo, "Builds").num
    reply_id = hub.reply(repo, num, "working on it")
    job = store.jobs.enqueue("t" * 64, {"format": "gptq", "target_sms": [89], "revision": SHA}, repo=repo)[0]
    command, _ = store.commands.record(
        repo=repo, discussion_num=num, comment_id="c", author="alice", text="/quantize", parsed={}
    )
    store.commands.update(
        command.id, build_keys=[job.build_key], status=CommandStatus.REPLIED, reply_comment_id=reply_id
    )
    updater = ReplyUpdater(store, hub).start()
    try:
        store.lifecycle.cancel(job.id)
        deadline = time.monotonic() + 15
        while store.commands.get(command.id).status is not CommandStatus.DONE:
            assert time.monotonic() < deadline, "the reply was not updated"
            time.sleep(0.05)
    finally:
        updater.stop()
    details = hubsim.api.get_discussion_details(repo, num)
    assert ": cancelled" in next(e.content for e in details.events if e.id == reply_id)
