"""Releases, commands and watches: what the handlers and the publisher remember."""

from __future__ import annotations

from datetime import timedelta

import pytest

from state import (
    ApprovalMode,
    CommandStatus,
    GuardFailed,
    IllegalTransition,
    ReleaseKind,
    ReleaseStatus,
    Store,
    WatchKind,
)
from state.models import utcnow


def test_release_life_and_lookup(store: Store) -> None:
    release = store.releases.record(
        build_key="bk",
        repo_id="org/model",
        kind=ReleaseKind.PR,
        pr_number=7,
        url="https://hub/org/model/discussions/7",
    )

    store.releases.set_status(release.id, {ReleaseStatus.OPEN}, ReleaseStatus.CLOSED)
    with pytest.raises(GuardFailed):
        store.releases.set_status(release.id, {ReleaseStatus.OPEN}, ReleaseStatus.MERGED)
    store.releases.set_status(release.id, {ReleaseStatus.CLOSED}, ReleaseStatus.DECLINED)
    with pytest.raises(IllegalTransition):
        store.releases.set_status(release.id, {ReleaseStatus.DECLINED}, ReleaseStatus.OPEN)

    found = store.releases.find(build_key="bk")
    assert [(r.status, r.pr_number) for r in found] == [(ReleaseStatus.DECLINED, 7)]
    assert store.releases.find(repo_id="org/model", statuses=[ReleaseStatus.OPEN]) == []


def test_pr_release_needs_its_number(store: Store) -> None:
    with pytest.raises(ValueError, match="pr_number"):
        store.releases.record(build_key="bk", repo_id="o/m", kind=ReleaseKind.PR, url="https://x")


def test_command_recorded_once_per_comment_and_replied(store: Store) -> None:
    command, created = store.commands.record(
        repo="org/model", discussion_num=4, comment_id="c-1", author="alice", text="/quantize gptq"
    )
    again, created_again = store.commands.record(
        repo="org/model", discussion_num=4, comment_id="c-1", author="alice", text="/quantize gptq"
    )
    assert created and not created_again and again.id == command.id

    store.commands.update(
        command.id, from_statuses={CommandStatus.RECEIVED}, status=CommandStatus.REPLIED,
        reply_comment_id="reply-9", build_keys=["bk1"], parsed={"name": "quantize", "formats": ["gptq"]},
    )  # fmt: skip
    with pytest.raises(GuardFailed):
        store.commands.update(
            command.id, from_statuses={CommandStatus.RECEIVED}, status=CommandStatus.REFUSED
        )

    stored = store.commands.in_discussion("org/model", 4)
    assert [(c.status, c.reply_comment_id, c.build_keys) for c in stored] == [
        (CommandStatus.REPLIED, "reply-9", ["bk1"])
    ]
    assert store.commands.count_since("alice", utcnow() - timedelta(hours=1)) == 1
    assert store.commands.count_since("alice", utcnow() + timedelta(seconds=1)) == 0


def test_watch_added_updated_listed_removed(store: Store) -> None:
    store.watches.add(WatchKind.REPO, "org/model", formats=["fp8"], sms=[90])
    store.watches.add(WatchKind.BASE_MODEL, "org/base", approval=ApprovalMode.AUTO)
    store.watches.add(WatchKind.REPO, "org/model", formats=["gptq", "fp8"], sms=[89, 90])

    assert [(w.kind, w.target) for w in store.watches.list()] == [
        (WatchKind.REPO, "org/model"),
        (WatchKind.BASE_MODEL, "org/base"),
    ]
    watch = store.watches.find(WatchKind.REPO, "org/model")
    assert (watch.formats, watch.sms, watch.approval) == (["gptq", "fp8"], [89, 90], ApprovalMode.APPROVAL)
    assert store.watches.remove(WatchKind.REPO, "org/model") is True
    assert store.watches.remove(WatchKind.REPO, "org/model") is False
    assert [w.target for w in store.watches.list(WatchKind.BASE_MODEL)] == ["org/base"]
