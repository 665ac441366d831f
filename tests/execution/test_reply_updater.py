"""Replies follow their builds: the store reports a change, the updater edits the reply on hubsim."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from bot.dashboard.reply_updater import ReplyUpdater
from bot.hub import Hub
from bot.retries import Cause, Retries
from bot.settings import load_settings
from state import CommandStatus, Job, Store

SHA = "cd" * 20


class CountingHub:
    """The real Hub client, counting the edits it is asked for."""

    def __init__(self, hub: Hub) -> None:
        self.hub, self.edits = hub, 0

    def edit_comment(self, repo_id: str, num: int, comment_id: str, text: str) -> None:
        self.edits += 1
        self.hub.edit_comment(repo_id, num, comment_id, text)


@dataclass
class Followed:
    """A reply on hubsim that follows one queued build."""

    repo: str
    num: int
    reply_id: str
    job: Job
    command_id: int

    def shown(self, hubsim) -> str:
        details = hubsim.api.get_discussion_details(self.repo, self.num)
        return next(e.content for e in details.events if e.id == self.reply_id)


@pytest.fixture
def followed(hubsim, repo_factory: Callable[..., str], store: Store) -> Followed:
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
    return Followed(repo, num, reply_id, job, command.id)


def test_the_reply_shows_each_new_stage_and_closes_when_the_build_ends(
    hubsim, store: Store, followed: Followed
) -> None:
    job = followed.job
    counting = CountingHub(Hub(endpoint=hubsim.url, token=hubsim.token))
    updater = ReplyUpdater(store, counting)
    store.changes.listen(updater.on_change)

    store.lifecycle.claim_build("w", 60)
    store.jobs.heartbeat(job.id, "w", 60, progress=0.3, message="quantize: layer 1")
    updater.flush()
    assert "building, 30%: quantize: layer 1" in followed.shown(hubsim) and counting.edits == 1
    store.jobs.heartbeat(job.id, "w", 60, progress=0.35, message="quantize: layer 2")
    updater.flush()
    assert counting.edits == 1  # progress within a stage costs no Hub call
    store.lifecycle.finish_build(job.id, "w", {"status": "succeeded"})
    settings = load_settings(None, transient_deadline_h=1.0, publish_backoff_s=60)
    start = datetime(2020, 1, 2, 3, 0, tzinfo=UTC)
    claimed = store.lifecycle.claim_publish("w", 60)
    Retries(settings, store, clock=lambda: start).publish_failed(
        claimed, "w", "the Hub answered 500", Cause.HUB
    )
    updater.flush()
    waiting = followed.shown(hubsim)
    assert "built; waiting: publish failed: the Hub answered 500; retrying at 2020-01-02 03:0" in waiting
    assert "UTC, attempt 2" in waiting and "All done." not in waiting
    claimed = store.lifecycle.claim_publish("w", 60)  # and past the deadline the Hub fails it again
    later = Retries(settings, store, clock=lambda: start + timedelta(hours=2))
    later.publish_failed(claimed, "w", "the Hub answered 500", Cause.HUB)
    updater.flush()
    text = followed.shown(hubsim)
    assert "failed: publish failed: the Hub answered 500 (the Hub kept failing since 2020-01-02 03:00" in text
    assert "type `/retry` to try again" in text and "All done." in text
    assert store.commands.get(followed.command_id).status is CommandStatus.DONE
    edits = counting.edits
    store.lifecycle.retry(store.jobs.get(job.id), note="/retry")
    updater.flush()
    assert counting.edits == edits  # a closed reply follows nothing any more


def test_the_updater_thread_edits_without_anyone_flushing(hubsim, store: Store, followed: Followed) -> None:
    updater = ReplyUpdater(store, Hub(endpoint=hubsim.url, token=hubsim.token)).start()
    try:
        store.lifecycle.cancel(followed.job.id)
        deadline = time.monotonic() + 15
        while store.commands.get(followed.command_id).status is not CommandStatus.DONE:
            assert time.monotonic() < deadline, "the reply was not updated"
            time.sleep(0.05)
    finally:
        updater.stop()
    assert ": cancelled" in followed.shown(hubsim)
