"""One request budget per token: polling spends only its share of the Hub's window and leaves the rest to
replies and publishing, nothing is sent into a spent window before the reset the Hub named, and the status
page and /metrics show where the token stands. Against hubsim enforcing a per-user quota over HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from bot_support import free_port
from fastapi.testclient import TestClient
from huggingface_hub import HfApi

from bot import budget as budget_module
from bot.budget import RequestBudget
from bot.errors import HubBudgetSpent
from bot.hub import FREE_QUOTAS, Hub
from bot.hubsim import Directory, HubService, HubsimServer, User
from bot.hubsim.users import new_token
from bot.intake.readiness import HubReadiness
from bot.intake.scheduler import Poller
from bot.intake.server import create_app
from bot.settings import load_settings
from handlers.context import Options
from state import Store, WatchKind

QUOTA = 20


@dataclass
class Limited:
    """A hubsim whose bot user has `QUOTA` API requests per window, and a repo with a discussion."""

    service: HubService
    url: str
    bot: User
    repo: str
    discussion: int

    def sent(self, route: str | None = None) -> int:
        return self.service.rate_limits.count(caller=self.bot.name, bucket="api", route=route)


class FakeTime:
    """The budget's clock and sleep: a wait passes at once, and is recorded."""

    def __init__(self) -> None:
        self.now, self.slept = 1000.0, []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def limited() -> Iterator[Limited]:
    bot, owner = User("quantbot", new_token()), User("owner", new_token())
    service = HubService(Directory([bot, owner], []))
    server = HubsimServer(service, port=free_port()).start()
    api = HfApi(endpoint=server.url, token=owner.token)
    api.create_repo("owner/model")
    num = api.create_discussion("owner/model", "Builds?", description="Hello").num
    service.rate_limits.set_quota("api", QUOTA, user=bot.name)
    try:
        yield Limited(service, server.url, bot, "owner/model", num)
    finally:
        server.stop()
        budget_module.forget(bot.token)


def _hub(limited: Limited, time: FakeTime | None = None) -> Hub:
    time = time or FakeTime()
    budget = RequestBudget(dict(FREE_QUOTAS), poll_share=0.5, clock=time.clock, sleep=time.sleep)
    return Hub(endpoint=limited.url, token=limited.bot.token, budget=budget)


def test_polling_spends_its_share_and_a_reply_still_goes_out(limited: Limited, store: Store) -> None:
    hub = _hub(limited)
    for i in range(QUOTA):  # a listing each: more than the whole window
        store.watches.add(WatchKind.AUTHOR, f"author-{i}")
    options = Options(bot_name="quantbot", namespace="quantbot", bot_user=limited.bot.name)
    poller = Poller(
        load_settings(None, hf_endpoint=limited.url),
        store,
        hub,
        wake=lambda *_: None,
        options=lambda: options,
    )
    poller.poll()
    assert limited.sent() == QUOTA // 2  # the poll's share of the window, then it stopped sending
    assert hub.budget is not None and hub.budget.deferred["poller"] == 1  # it stopped at the first refusal
    assert store.watches.marks().keys() == {f"author:author-{i}" for i in range(QUOTA // 2)}  # the rest wait

    reply = threading.Thread(  # a command's reply, posted where events are handled, may spend the rest
        target=hub.reply, args=(limited.repo, limited.discussion, "Queued."), name="quantbot-dispatcher"
    )
    reply.start()
    reply.join(30)
    assert limited.sent() == QUOTA // 2 + 1
    assert limited.service.rate_limits.refused == {}  # no 429: the budget was never exceeded
    shown = hub.budget.snapshot()
    api = shown["buckets"]["api"]
    assert (api["limit"], api["remaining"], api["poll_limit"], api["from_hub"]) == (
        QUOTA,
        QUOTA // 2 - 1,
        10,
        True,
    )
    assert shown["requests"] == {"poller": {"api": QUOTA // 2}, "replies": {"api": 1}}


def test_no_request_goes_into_a_429_before_the_reset_the_hub_named(limited: Limited) -> None:
    time = FakeTime()
    hub = _hub(limited, time)
    route = "GET /api/{rtype}/{ns}/{name}"
    limited.service.faults.add(r"/api/models/owner/model$", status=429, times=1, retry_after=120)

    with hub.acting_as("poller"), pytest.raises(HubBudgetSpent, match="reset in 120 s"):
        hub.model_info(limited.repo)  # the poller does not wait: it tries again on its next run
    assert hub.budget is not None and hub.budget.requests() == {("poller", "api"): 1}  # no retry sent
    assert time.slept == []

    limited.service.faults.add(r"/api/models/owner/model$", status=429, times=1, retry_after=120)
    time.now += 121  # the first window passed
    done: list[str] = []
    worker = threading.Thread(
        target=lambda: done.append(hub.model_info(limited.repo).id), name="quantbot-publish"
    )
    worker.start()
    worker.join(30)
    assert done == [limited.repo]  # publishing waits for the reset, then its retry succeeds
    assert sum(time.slept) >= 120 and limited.sent(route) == 1  # the Hub counts the success (not faults)
    assert hub.budget.requests() == {("poller", "api"): 1, ("publishing", "api"): 2}
    assert hub.budget.refused == {"poller": 1, "publishing": 1}


def test_the_status_page_and_metrics_show_the_budget(limited: Limited, store: Store, tmp_path) -> None:
    hub = _hub(limited)
    with hub.acting_as("poller"):
        hub.model_info(limited.repo)
    settings = load_settings(data_dir=tmp_path, hf_endpoint=limited.url)
    client = TestClient(create_app(settings, store, readiness=HubReadiness(hub)))
    status = client.get("/api/status").json()["hub_budget"]
    assert status["requests"] == {"poller": {"api": 1}}
    assert status["buckets"]["api"]["limit"] == QUOTA and status["buckets"]["api"]["remaining"] == QUOTA - 1
    page = client.get("/").text
    assert "Hub request budget" in page and "poller 1" in page
    metrics = client.get("/metrics").text
    assert 'quantbot_hub_requests_total{bucket="api",caller="poller"} 1.0' in metrics
    assert 'quantbot_hub_budget_remaining{bucket="api"} 19.0' in metrics
