"""`webhooks sync`: creates the bot's hook on the Hub, leaves it alone when it is right, updates it when the
watch list changes; typed users and orgs, base models left to the poller."""

from __future__ import annotations

import uuid

import pytest

from bot.commands.webhooks import sync_webhook
from bot.errors import UsageError
from bot.hub import Hub
from bot.settings import load_settings
from state import Store, WatchKind


def test_create_then_unchanged_then_updated(hubsim, store: Store) -> None:
    url = f"http://127.0.0.1:9/{uuid.uuid4().hex}/webhooks/hub"
    settings = load_settings(
        None, hf_endpoint=hubsim.url, webhook_secret="s3cret", command_namespaces=[hubsim.org]
    )
    hub = Hub(endpoint=hubsim.url, token=hubsim.token)
    store.watches.add(WatchKind.REPO, "alice/model")
    store.watches.add(WatchKind.BASE_MODEL, "meta/base")
    try:
        created = sync_webhook(hub, store, settings, url)
        assert created.action == "created"
        assert created.watched == [
            {"type": "model", "name": "alice/model"},
            {"type": "org", "name": hubsim.org},
            {"type": "user", "name": hubsim.user},  # the bot's own namespace (its token's user)
        ]
        assert created.unwatchable == ["base_model meta/base"]
        [hook] = [h for h in hub.list_webhooks() if h.url == url]
        assert hook.secret == "s3cret" and sorted(hook.domains) == ["discussion", "repo"]
        assert sync_webhook(hub, store, settings, url).action == "unchanged"

        store.watches.add(WatchKind.AUTHOR, hubsim.other_user)
        updated = sync_webhook(hub, store, settings, url)
        assert updated.action == "updated" and updated.webhook_id == created.webhook_id
        [hook] = [h for h in hub.list_webhooks() if h.url == url]
        assert {"type": "user", "name": hubsim.other_user} in [
            {"type": w.type, "name": w.name} for w in hook.watched
        ]
    finally:
        hubsim.server.webhooks.hooks.pop(created.webhook_id, None)


def test_no_secret_no_sync(hubsim, store: Store) -> None:
    settings = load_settings(None, hf_endpoint=hubsim.url, webhook_secret=None)
    with pytest.raises(UsageError, match="set webhook_secret first"):
        sync_webhook(Hub(endpoint=hubsim.url, token=hubsim.token), store, settings, "http://127.0.0.1:9/h")
