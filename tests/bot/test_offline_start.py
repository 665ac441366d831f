"""`quantbot serve` without the Hub: it starts, stores and acknowledges webhooks, says it is degraded and not
ready, and handles what it stored once the Hub (a hubsim started later on the configured port) answers."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest
from bot_support import free_port, until

from bot.hubsim import Directory, HubService, HubsimServer, User
from bot.runtime import Bot, BotServer
from bot.settings import load_settings

SECRET = "offline-" + uuid.uuid4().hex


def test_serve_starts_without_the_hub_and_handles_once_it_answers(
    tmp_path, payloads, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.intake.readiness.FIRST_DELAY_S", 0.2)
    monkeypatch.setattr("bot.intake.readiness.MAX_DELAY_S", 0.5)
    token, port = "hf_bot_" + uuid.uuid4().hex, free_port()
    settings = load_settings(
        data_dir=tmp_path, hf_endpoint=f"http://127.0.0.1:{port}", hf_token=token, webhook_secret=SECRET,
        poll_interval_min=60,
    )  # fmt: skip
    server = BotServer(Bot.assemble(settings), port=0).start()  # nothing listens on the Hub's port
    hub: HubsimServer | None = None
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            health = client.get("/healthz")
            assert health.status_code == 200 and health.json()["status"] == "degraded: Hub unreachable"
            assert "cannot reach the Hub" in health.json()["hub"]
            assert client.get("/readyz").status_code == 503
            body = json.dumps(payloads["main_commit"]).encode()
            answer = client.post("/webhooks/hub", content=body, headers={"X-Webhook-Secret": SECRET})
            assert answer.status_code == 202 and answer.json()["status"] == "accepted"
            delivery, events = answer.json()["delivery_id"], server.bot.store.events
            event_id = until(
                lambda: next((e.id for e in events.recent() if e.delivery_id == delivery), None), "its commit"
            )
            time.sleep(0.5)
            assert events.get(event_id).processed_at is None  # stored, waiting for the Hub

            hub = HubsimServer(HubService(Directory([User("quantbot", token)], [])), port=port).start()
            until(lambda: client.get("/readyz").status_code == 200, "the bot to be ready")
            assert client.get("/healthz").json() == {"status": "ok", "webhooks": "enabled"}
            assert server.bot.options.bot_user == "quantbot"
            event = until(
                lambda: (e := server.bot.store.events.get(event_id)).processed_at and e, "the event"
            )
            assert event.outcome == "ignored"  # some-user/some-repo is not watched: handled, politely
    finally:
        server.stop()
        if hub is not None:
            hub.stop()
