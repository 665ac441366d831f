"""bot.intake.webhooks without a server: bytes and headers in, an Event or a typed error out."""

from __future__ import annotations

import json

import pytest

from bot.errors import WebhookForbidden, WebhookUnauthorized
from bot.intake.webhooks import event_from_payload, parse_webhook


def _body(payload) -> bytes:
    return json.dumps(payload).encode()


def test_header_name_is_case_insensitive_and_secret_exact(payloads) -> None:
    body = _body(payloads["main_commit"])
    assert parse_webhook({"x-webhook-secret": "s"}, body, "s").handled
    with pytest.raises(WebhookForbidden):
        parse_webhook({"X-WEBHOOK-SECRET": "S"}, body, "s")
    with pytest.raises(WebhookUnauthorized):
        parse_webhook({}, body, "s")


def test_event_fields_and_head_sha_kept(payloads) -> None:
    event = parse_webhook({"X-Webhook-Secret": "s"}, _body(payloads["main_commit"]), "s")

    assert (event.scope, event.action, event.repo) == ("repo.content", "update", "some-user/some-repo")
    assert event.hook.repo.head_sha == "575db8b7a51b6f85eb06eee540738584589f131c"  # huggingface_hub drops it
    assert event.hook.updated_refs[0].ref == "refs/heads/main"
    assert len(event.delivery_id) == 64


def test_a_pr_ref_push_is_not_a_main_push(payloads) -> None:
    main = payloads["main_commit"]
    pr_push = json.loads(json.dumps(main))
    pr_push["updatedRefs"] = [{"ref": "refs/pr/5", "oldSha": None, "newSha": "2" * 40}]  # same headSha

    assert event_from_payload(main, "a").dedup_key != event_from_payload(pr_push, "b").dedup_key


def test_the_stored_payload_parses_to_the_same_event(payloads) -> None:
    """What the dispatcher does after a restart: re-validate the stored payload, same key, same facts."""
    received = parse_webhook({"X-Webhook-Secret": "s"}, _body(payloads["command_comment"]), "s")
    again = event_from_payload(json.loads(json.dumps(received.payload)), received.delivery_id)

    assert again == received
    assert again.dedup_key == "comment:create:6398872887bfcfb93a306f18"
    assert again.hook.comment.content == "@my-bot /run-eval --task mmlu"


def test_a_push_with_thousands_of_refs_is_taken_and_keyed_by_all_of_them(payloads) -> None:
    """A mirror push of tags names more than 1,000 refs; its key covers them all, in any order."""
    push = payloads["main_commit"]
    refs = [{"ref": f"refs/tags/v{i}", "oldSha": None, "newSha": f"{i:040x}"} for i in range(3000)]
    push["updatedRefs"] = [*push["updatedRefs"], *refs]
    body = _body(push)
    assert len(body) < 1024 * 1024  # within the default webhook_max_bytes
    event = parse_webhook({"X-Webhook-Secret": "s"}, body, "s")
    assert event.handled and len(event.hook.updated_refs) == 3001
    shuffled = {**push, "updatedRefs": list(reversed(push["updatedRefs"]))}
    assert event_from_payload(shuffled, "other").dedup_key == event.dedup_key
