"""Webhooks: version-3 payloads that huggingface_hub's own `WebhookPayload` parses, sent with the secret."""

from __future__ import annotations

import uuid

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, WebhookPayload


def _event(scope: str, action: str):
    return lambda payload: payload["event"] == {"scope": scope, "action": action}


def test_every_event_kind_is_delivered_and_parses(hubsim, webhook_receiver):
    api = hubsim.api
    repo_id = f"{hubsim.user}/hooked-{uuid.uuid4().hex[:8]}"
    hook = hubsim.server.register_webhook(
        webhook_receiver.url, "s3cret", watched=[{"type": "model", "name": repo_id}]
    )
    try:
        api.create_repo(repo_id)
        created = webhook_receiver.wait(_event("repo", "create"))
        assert created.headers["X-Webhook-Secret"] == "s3cret"
        initial = api.model_info(repo_id).sha
        assert created.payload["repo"]["headSha"] == initial

        commit = api.upload_file(path_or_fileobj=b"w", path_in_repo="w.bin", repo_id=repo_id)
        content = webhook_receiver.wait(_event("repo.content", "update")).payload
        assert content["repo"]["headSha"] == commit.oid
        assert content["updatedRefs"] == [{"ref": "refs/heads/main", "oldSha": initial, "newSha": commit.oid}]

        discussion = api.create_discussion(repo_id, "Quantize please", description="fp8 would help")
        opened = webhook_receiver.wait(_event("discussion", "create")).payload
        assert (
            opened["discussion"]["num"] == discussion.num and opened["comment"]["content"] == "fp8 would help"
        )
        assert "headSha" not in opened["repo"]
        reply = api.comment_discussion(repo_id, discussion.num, "@quantbot /build fp8")
        commented = webhook_receiver.wait(_event("discussion.comment", "create")).payload
        assert commented["comment"]["id"] == reply.id
        assert commented["comment"]["url"]["web"].endswith(f"/discussions/{discussion.num}#{reply.id}")
        assert commented["discussion"]["url"]["api"] == f"{hubsim.url}/api/models/{repo_id}/discussions/1"
        api.edit_discussion_comment(repo_id, discussion.num, reply.id, "@quantbot /build int4_awq")
        webhook_receiver.wait(_event("discussion.comment", "update"))

        pr = api.create_commit(
            repo_id, [CommitOperationAdd("a.txt", b"a")], commit_message="Add a", create_pr=True
        )
        pr_ref = webhook_receiver.wait(
            lambda p: p.get("updatedRefs", [{}])[0].get("ref") == "refs/pr/2"
        ).payload
        assert pr_ref["updatedRefs"][0] == {"ref": "refs/pr/2", "oldSha": None, "newSha": pr.oid}
        webhook_receiver.wait(
            lambda p: p["event"]["action"] == "create" and p.get("discussion", {}).get("num") == 2
        )

        api.merge_pull_request(repo_id, pr.pr_num)
        merged = webhook_receiver.wait(lambda p: p.get("discussion", {}).get("status") == "merged").payload
        main = api.model_info(repo_id).sha
        assert merged["event"] == {"action": "update", "scope": "discussion"}
        assert merged["discussion"]["changes"] == {"base": "refs/heads/main", "mergeCommitId": main}
        webhook_receiver.wait(lambda p: p.get("updatedRefs", [{}])[0].get("newSha") == main)

        api.change_discussion_status(repo_id, discussion.num, "closed")
        webhook_receiver.wait(lambda p: p.get("discussion", {}).get("status") == "closed")
        api.update_repo_settings(repo_id, private=True)
        config = webhook_receiver.wait(_event("repo.config", "update")).payload
        assert config["updatedConfig"] == {"private": True} and config["repo"]["private"] is True
        api.delete_repo(repo_id)
        webhook_receiver.wait(_event("repo", "delete"))
    finally:
        api.delete_repo(repo_id, missing_ok=True)
        hubsim.server.webhooks.hooks.pop(hook.id)

    for item in webhook_receiver.received:
        parsed = WebhookPayload.model_validate(item.payload)
        assert parsed.webhook.id == hook.id and parsed.webhook.version == 3
        assert parsed.repo.name == repo_id and parsed.repo.type == "model"
        assert item.headers["X-Webhook-Secret"] == "s3cret"
    scopes = {(r.payload["event"]["scope"], r.payload["event"]["action"]) for r in webhook_receiver.received}
    assert scopes == {
        ("repo.config", "update"),
        ("repo", "create"),
        ("repo", "delete"),
        ("repo.content", "update"),
        ("discussion", "create"),
        ("discussion", "update"),
        ("discussion.comment", "create"),
        ("discussion.comment", "update"),
    }
    log = [d for d in hubsim.server.webhooks.deliveries() if d.webhook_id == hook.id]
    assert len(log) == len(webhook_receiver.received)
    assert all(d.status == 200 and d.latency_ms is not None for d in log)


def test_webhook_settings_api_with_the_real_client(hubsim, repo_factory, webhook_receiver):
    api = hubsim.api
    hook = api.create_webhook(
        url=webhook_receiver.url,
        watched=[{"type": "user", "name": hubsim.user}],
        domains=["discussion"],
        secret="abc",
    )
    try:
        assert [h.id for h in api.list_webhooks()] == [hook.id]
        assert hubsim.other_api.list_webhooks() == []
        assert api.get_webhook(hook.id).secret == "abc"
        repo_id = repo_factory()
        api.upload_file(
            path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo_id
        )  # repo domain: not watched
        api.create_discussion(repo_id, "watched topic")
        delivered = webhook_receiver.wait(_event("discussion", "create"))
        assert delivered.headers["X-Webhook-Secret"] == "abc"
        assert [r.payload["event"]["scope"] for r in webhook_receiver.received] == ["discussion"]

        api.disable_webhook(hook.id)
        api.create_discussion(repo_id, "unseen topic")
        api.enable_webhook(hook.id)
        updated = api.update_webhook(
            hook.id,
            url=webhook_receiver.url,
            watched=[{"type": "model", "name": repo_id}],
            domains=["repo", "discussion"],
        )
        assert updated.domains == ["repo", "discussion"] and not updated.disabled
        api.create_discussion(repo_id, "seen again")
        webhook_receiver.wait(lambda p: p.get("discussion", {}).get("title") == "seen again")
        assert "unseen topic" not in [
            r.payload.get("discussion", {}).get("title") for r in webhook_receiver.received
        ]
    finally:
        api.delete_webhook(hook.id)
    assert api.list_webhooks() == []


def test_hooks_of_other_users_do_not_see_private_repos(hubsim, repo_factory, webhook_receiver):
    hook = hubsim.other_api.create_webhook(
        url=webhook_receiver.url, watched=[{"type": "user", "name": hubsim.user}]
    )
    try:
        private = repo_factory("private", private=True)
        public = repo_factory("public")
        hubsim.api.create_discussion(private, "secret topic")
        hubsim.api.create_discussion(public, "public topic")
        webhook_receiver.wait(lambda p: p.get("discussion", {}).get("title") == "public topic")
        hubsim.server.webhooks.wait_idle()
        assert private not in {r.payload["repo"]["name"] for r in webhook_receiver.received}
    finally:
        hubsim.other_api.delete_webhook(hook.id)


def test_failed_deliveries_are_logged(hubsim, repo_factory, webhook_receiver):
    webhook_receiver.status = 500
    repo_id = repo_factory()
    watched = [{"type": "model", "name": repo_id}]
    answering = hubsim.server.register_webhook(webhook_receiver.url, watched=watched)
    unreachable = hubsim.server.register_webhook("http://127.0.0.1:9/nowhere", watched=watched)
    try:
        hubsim.api.create_discussion(repo_id, "anyone there?")
        failed = hubsim.wait_for_delivery(lambda d: d.webhook_id == answering.id)
        assert failed.status == 500 and not failed.ok
        refused = hubsim.wait_for_delivery(lambda d: d.webhook_id == unreachable.id)
        assert refused.status is None and "ConnectError" in refused.error
        log = httpx.get(f"{hubsim.url}/_hubsim/deliveries", params={"scope": "discussion"}).json()
        mine = [d for d in log if d["webhook_id"] in (answering.id, unreachable.id)]
        assert {d["status"] for d in mine} == {500, None}
        assert all(d["latency_ms"] is not None and d["payload"]["repo"]["name"] == repo_id for d in mine)
    finally:
        hubsim.server.webhooks.hooks.pop(answering.id)
        hubsim.server.webhooks.hooks.pop(unreachable.id)


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://x", "watched": [], "domains": ["repo"]},
        {"url": "http://x", "watched": [{"type": "galaxy", "name": "x"}], "domains": ["repo"]},
        {"url": "http://x", "watched": [], "domains": ["everything"]},
        {"jobSourceId": "123", "watched": [], "domains": ["repo"]},
    ],
    ids=["bad-url", "bad-watched", "bad-domain", "job"],
)
def test_bad_webhook_definitions_are_refused(hubsim, body):
    answer = httpx.post(
        f"{hubsim.url}/api/settings/webhooks", json=body, headers={"authorization": f"Bearer {hubsim.token}"}
    )
    assert answer.status_code == 400 and answer.json()["error"]
