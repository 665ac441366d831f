"""What the Hub may send tomorrow is acknowledged and stored as ignored with the reason, never refused: the
Hub disables a webhook that keeps answering 4xx. Secret, size and JSON checks stay strict."""

from __future__ import annotations

import json
from typing import Any

import pytest
from huggingface_hub import WebhookPayload

from state import EventRecord


def _event(bot, response) -> EventRecord:
    assert response.status_code == 202, response.text
    return bot.stored(response)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("kernel_commit", 'repo type "kernel" is not one the bot knows'),
        ("unknown_action", 'action "pin" is not one the bot knows'),
        ("repo_config", 'scope "repo.config" is not one the bot acts on'),
    ],
)
def test_new_kinds_of_event_are_stored_as_ignored_with_the_reason(bot, payloads, name, reason) -> None:
    response = bot.deliver(payloads[name])

    assert response.json()["status"] == "ignored" and response.json()["reason"] == reason
    event = _event(bot, response)
    assert (event.outcome, event.error) == ("ignored", reason)
    assert event.processed_at is not None and event.repo == payloads[name]["repo"]["name"]
    assert bot.store.events.pending() == [] and bot.notified == []  # nothing for the dispatcher


@pytest.mark.parametrize("scope", ["collection", "space.runtime", "Repo.Content", "dataset.viewer"])
def test_scopes_the_bot_does_not_act_on_are_stored_as_ignored(bot, scope: str) -> None:
    payload = {"event": {"action": "update", "scope": scope}, "webhook": {"id": "abc", "version": 3}}

    event = _event(bot, bot.deliver(payload))

    assert (event.scope, event.outcome, event.repo) == (scope, "ignored", None)
    assert event.error == f'scope "{scope}" is not one the bot acts on'


def test_a_push_to_a_branch_named_outside_ascii_is_queued_and_keyed(bot, payloads) -> None:
    payload = payloads["unicode_branch"]
    WebhookPayload.model_validate(payload)

    event = _event(bot, bot.deliver(payload))

    assert event.outcome is None and event.payload == payload  # for the handlers, which ignore non-main refs
    assert event.dedup_key.startswith("repo.content:update:some-user/some-repo:refs/heads/entwürfe/模型-ü@")
    assert bot.deliver(payload).status_code == 202
    assert [e.id for e in bot.store.events.recent()] == [event.id]  # delivered again: the same event


def test_the_moved_and_space_payloads_are_queued(bot, payloads) -> None:
    for name in ("repo_moved", "space_pr_ref"):
        WebhookPayload.model_validate(payloads[name])
        assert _event(bot, bot.deliver(payloads[name])).outcome is None


def test_an_unknown_action_of_a_sub_scope_is_an_update_of_the_parent(bot, payloads) -> None:
    payload = payloads["command_comment"]
    payload["event"] = {"action": "react", "scope": "discussion.comment.reaction"}

    event = _event(bot, bot.deliver(payload))

    assert (event.scope, event.action, event.outcome) == ("discussion.comment", "update", None)


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"updatedRefs": [{"ref": "refs/heads/a\u0007b", "newSha": "1" * 40}]}, 422),  # a control character
        ({"event": {"action": "update"}}, 422),  # no scope
    ],
)
def test_what_no_hub_sends_is_still_refused(bot, payloads, change: dict[str, Any], status: int) -> None:
    payload = payloads["main_commit"] | change
    assert bot.deliver(payload).status_code == status
    assert bot.store.events.recent() == []


def test_checks_stay_strict_for_ignored_events(bot, payloads) -> None:
    assert bot.deliver(payloads["kernel_commit"], secret="wrong").status_code == 403
    assert bot.deliver(json.dumps(payloads["kernel_commit"]).encode()[:-3]).status_code == 400
    assert bot.store.events.recent() == []
