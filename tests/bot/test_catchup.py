"""No command lost to downtime: the poll stores the commands no webhook delivered, as the webhook would have
(same payload shape, same comment-id key), and the bot answers each once, against hubsim over HTTP."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from bot_support import free_port, until

from bot.hub import Hub
from bot.hubsim.webhooks import Delivery
from bot.intake.scheduler import Poller
from bot.intake.webhooks import event_from_payload
from bot.runtime import Bot, BotServer
from bot.settings import load_settings
from handlers.context import Options
from state import Store, WatchKind

SECRET = "catchup-" + uuid.uuid4().hex
DEAD_URL = "http://127.0.0.1:9/hook"  # a closed port: hubsim logs the payload, the delivery fails


@pytest.fixture
def hooked(hubsim) -> Iterator[Callable[[str, list[str]], None]]:
    """`hook(url, repos)`: hubsim posts the repos' events to `url` for the rest of the test."""
    made = []
    yield lambda url, repos: made.append(
        hubsim.server.register_webhook(url, SECRET, watched=[{"type": "model", "name": r} for r in repos])
    )
    for hook in made:
        del hubsim.server.webhooks.hooks[hook.id]


def _comment(hubsim, repo: str, text: str, api=None) -> tuple[str, Delivery]:
    """Post `text` (as other-user by default) in the repo's discussion; its id and the delivery."""
    api = api or hubsim.other_api
    found = list(api.get_repo_discussions(repo))
    num = found[0].num if found else api.create_discussion(repo, "Builds", description="Hello").num
    comment = api.comment_discussion(repo, num, text)
    delivery = hubsim.wait_for_delivery(lambda d: (d.payload.get("comment") or {}).get("id") == comment.id)
    return comment.id, delivery


def _replies(hubsim, repo: str) -> list[str]:
    [discussion] = hubsim.api.get_repo_discussions(repo)
    details = hubsim.api.get_discussion_details(repo, discussion.num)
    return [e.content for e in details.events if e.type == "comment" and e.author == hubsim.user]


def test_a_command_posted_while_the_bot_is_down_is_answered_after_restart_once(
    hubsim, repo_factory: Callable[..., str], hooked, tmp_path
) -> None:
    repo, port = repo_factory("catchup"), free_port()
    hooked(f"http://127.0.0.1:{port}/webhooks/hub", [repo])
    settings = load_settings(
        data_dir=tmp_path, hf_endpoint=hubsim.url, hf_token=hubsim.token, webhook_secret=SECRET,
        poll_interval_min=60,
    )  # fmt: skip

    def serve() -> BotServer:
        server = BotServer(Bot.assemble(settings), port=port).start()
        until(lambda: httpx.get(server.url + "/readyz").status_code == 200, "the bot to be ready")
        return server

    server = serve()
    server.bot.store.watches.add(WatchKind.REPO, repo)
    _comment(hubsim, repo, "/help")  # delivered: answered as ever
    until(lambda: len(_replies(hubsim, repo)) == 1, "the answer to the first command")
    server.stop()

    down_id, delivery = _comment(hubsim, repo, f"@{hubsim.user} /status")
    assert delivery.error is not None  # nobody listened: the Hub's delivery failed
    sent = delivery.payload
    server = serve()
    try:
        store = server.bot.store
        event = until(  # stored by the catch-up at start, then handled
            lambda: next((e for e in store.events.recent() if e.delivery_id.endswith(down_id)), None),
            "the command to be found",
        )
        event = until(lambda: (e := store.events.get(event.id)).processed_at and e, "the command handled")
        assert event.delivery_id == f"catchup:{down_id}" and event.outcome == "handled"
        replies = _replies(hubsim, repo)
        assert len(replies) == 2 and replies[1].startswith(f"No builds of `{repo}` yet.")
        [command] = [c for c in store.commands.recent() if c.comment_id == down_id]
        assert command.author == hubsim.other_user and command.reply_comment_id is not None
        assert event.dedup_key == event_from_payload(sent, "hub").dedup_key  # the webhook's own key

        # The Hub's delivery arriving late, and the next poll, find the command answered: no second reply.
        late = httpx.post(server.url + "/webhooks/hub", json=sent, headers={"X-Webhook-Secret": SECRET})
        assert late.status_code == 202
        assert server.bot.poller.catch_up.run() == 0
        time.sleep(0.5)
        assert len(_replies(hubsim, repo)) == 2 and len(store.commands.recent()) == 2
        assert [e.id for e in store.events.recent(100) if e.dedup_key == event.dedup_key] == [event.id]
    finally:
        server.stop()


@pytest.fixture
def poller(hubsim, store: Store) -> Poller:
    settings = load_settings(None, hf_endpoint=hubsim.url, command_namespaces=[hubsim.other_user])
    options = Options(bot_name="quantbot", namespace="quantbot", bot_user=hubsim.user)
    hub = Hub(endpoint=hubsim.url, token=hubsim.token)
    return Poller(settings, store, hub, wake=lambda event_id, event: None, options=lambda: options)


def test_the_catch_up_stores_what_the_webhook_carries_skips_a_failing_repo_and_bounds_its_reads(
    hubsim, repo_factory: Callable[..., str], hooked, store: Store, poller: Poller, monkeypatch
) -> None:
    watched, theirs = repo_factory("watched"), repo_factory("theirs", token=hubsim.other_token)
    hooked(DEAD_URL, [watched, theirs])
    _comment(hubsim, watched, "/help")  # before the watch: not the bot's to answer
    store.watches.add(WatchKind.REPO, watched.upper())  # in another case: the Hub's name comes back
    hubsim.fail(re.escape(f"/api/models/{watched}/discussions") + "$", status=429, times=4)
    mine = [_comment(hubsim, theirs, "@quantbot /status")]
    _comment(hubsim, theirs, "Nice model!")
    _comment(hubsim, theirs, "/help", api=hubsim.api)  # the bot's own comment
    poller.catch_up.start_sweep()  # as after a downtime: every repo where the bot takes commands is read
    assert poller.catch_up.run() == 1  # the watched repo's listing failed: skipped this round, logged

    mine.append(_comment(hubsim, watched, "/quantize gptq"))
    assert poller.catch_up.run() == 1  # still due, its cutoff kept; the other repo is read and done
    for comment_id, delivery in mine:
        [event] = [e for e in store.events.recent() if e.delivery_id == f"catchup:{comment_id}"]
        hooked_event = event_from_payload(delivery.payload, "hub")
        assert event.dedup_key == hooked_event.dedup_key
        caught = event_from_payload(event.payload, event.delivery_id).hook
        for part in (
            "repo.name",
            "discussion.num",
            "discussion.is_pull_request",
            "comment.id",
            "comment.content",
        ):
            assert _get(caught, part) == _get(hooked_event.hook, part), part
    assert {e.scope for e in store.events.recent()} == {"discussion.comment"}
    before = hubsim.server.rate_limits.count(caller=hubsim.user)
    assert poller.catch_up.run() == 0
    assert hubsim.server.rate_limits.count(caller=hubsim.user) == before  # nothing due: no request

    monkeypatch.setattr("bot.intake.catchup.MAX_DETAILS", 1)  # one discussion's details per run
    _comment(hubsim, watched, "/help")
    _comment(hubsim, theirs, "/help")
    poller.catch_up.cutoffs.clear()
    poller.catch_up.start_sweep()
    assert [poller.catch_up.run() for _ in range(3)] == [1, 1, 0]  # one repo a run, then each is up to date


def _get(hook: Any, path: str) -> Any:
    for name in path.split("."):
        hook = getattr(hook, name)
    return hook
