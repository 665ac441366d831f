"""A poll costs what changed, not what is watched: hubsim counts the bot's requests (by its user) while the
poller follows 100 and 1,000 repos, of many namespaces, among 1,200; and the bot's own count per caller (what
`/metrics` shows) agrees with the Hub's."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from bot_support import free_port
from huggingface_hub import HfApi

from bot import budget as budget_module
from bot.hub import Hub
from bot.hubsim import Directory, HubService, HubsimServer, User, gitobjects
from bot.hubsim.seeding import seed
from bot.hubsim.users import new_token
from bot.intake import listings
from bot.intake.scheduler import Poller, poll_payload
from bot.settings import load_settings
from handlers.context import Options
from state import Store, WatchKind

NAMESPACES, TUNES = 40, 1_200


@dataclass
class BigHub:
    service: HubService
    url: str
    bot: User
    owners: list[User]

    def requests(self) -> int:
        return self.service.rate_limits.count(caller=self.bot.name)

    def push(self, repo: str) -> str:
        owner = next(u for u in self.owners if u.name == repo.partition("/")[0])
        api = HfApi(endpoint=self.url, token=owner.token)
        return api.upload_file(path_or_fileobj=uuid.uuid4().bytes, path_in_repo="w.bin", repo_id=repo).oid


@pytest.fixture(scope="module")
def big_hub() -> Iterator[BigHub]:
    """1,200 fine-tunes of two bases in 40 namespaces, last changed an hour ago (a Hub at rest)."""
    bot, owners = User("quantbot", new_token()), [User(f"owner-{i}", new_token()) for i in range(NAMESPACES)]
    service = HubService(Directory([bot, *owners], []))
    config = '{"architectures": ["LlamaForCausalLM"], "model_type": "llama"}'
    bases = [{"id": f"owner-0/base-{j}", "files": {"config.json": config}} for j in range(2)]
    tunes = [
        {
            "id": f"owner-{i % NAMESPACES}/tune-{i}",
            "files": {
                "README.md": f"---\nbase_model: owner-0/base-{i % 2}\n---\n# tune\n",
                "config.json": config,
            },
        }
        for i in range(TUNES)
    ]
    an_hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="milliseconds")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gitobjects, "now_iso", lambda: an_hour_ago.replace("+00:00", "Z"))
        seed(service, bases + tunes)
    server = HubsimServer(service, port=free_port()).start()
    try:
        yield BigHub(service, server.url, bot, owners)
    finally:
        server.stop()
        budget_module.forget(bot.token)


def _poller(big_hub: BigHub, store: Store) -> tuple[Poller, Hub]:
    settings = load_settings(None, hf_endpoint=big_hub.url)
    hub = Hub(endpoint=big_hub.url, token=big_hub.bot.token)
    options = Options(bot_name="quantbot", namespace="quantbot", bot_user=big_hub.bot.name)
    return Poller(settings, store, hub, wake=lambda event_id, event: None, options=lambda: options), hub


@pytest.mark.parametrize("watched", [100, 1_000])
def test_a_quiet_poll_costs_a_few_requests_and_k_changes_about_k_more(
    big_hub: BigHub, store: Store, watched: int
) -> None:
    poller, hub = _poller(big_hub, store)
    for i in range(watched):  # spread over all 40 namespaces
        store.watches.add(WatchKind.REPO, f"owner-{i % NAMESPACES}/tune-{i}")
    store.watches.add(WatchKind.AUTHOR, "owner-1")
    store.watches.add(WatchKind.BASE_MODEL, "owner-0/base-0")
    assert hub.budget is not None
    sent_before, counted_before = dict(hub.budget.requests()), big_hub.requests()

    assert poller.poll() == 0  # the first poll: nothing changed since the watches were added
    start = big_hub.requests()
    assert poller.poll() == 0
    quiet = big_hub.requests() - start
    assert quiet <= 30, f"a quiet poll over {watched} watched repos cost {quiet} requests"
    assert quiet <= 3  # one listing of all models, one of the author, one of the base model

    pushed = [f"owner-{i % NAMESPACES}/tune-{i}" for i in (3, 17, 42, 77)]
    shas = [big_hub.push(repo) for repo in pushed]
    for repo, sha in list(zip(pushed, shas, strict=True))[:2]:  # two of them a webhook delivered already
        poller._record(poll_payload(big_hub.url, repo, sha, private=False), f"hub:{sha}")
    start = big_hub.requests()
    assert poller.poll() == 2  # each change once, from the listing: no repo read to find it
    busy = big_hub.requests() - start
    assert busy == quiet + 2  # the catch-up reads the discussions of the changed repos no webhook told of
    recorded = {e.repo: e.dedup_key for e in store.events.pending()}
    assert set(recorded) == set(pushed) and all(
        recorded[r].endswith(s) for r, s in zip(pushed, shas, strict=True)
    )

    start = big_hub.requests()
    assert poller.poll() == 0  # quiet again: the changes are behind the marks
    assert big_hub.requests() - start == quiet

    # the bot's own count, by caller (what /metrics shows), is the Hub's
    sent = {key: n - sent_before.get(key, 0) for key, n in hub.budget.requests().items()}
    assert sum(sent.values()) == big_hub.requests() - counted_before
    assert {caller for (caller, _), n in sent.items() if n} == {"poller", "catchup"}


def test_when_the_whole_hub_changed_more_than_a_poll_reads_the_namespaces_are_read_instead(
    big_hub: BigHub, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listings, "MAX_ALL", 2)
    poller, _ = _poller(big_hub, store)
    for i in range(100):
        store.watches.add(WatchKind.REPO, f"owner-{i % NAMESPACES}/tune-{i}")
    assert poller.poll() == 0
    pushed = [f"owner-{i % NAMESPACES}/tune-{i}" for i in (5, 6, 7)] + ["owner-9/tune-1009"]  # one unwatched
    for repo in pushed:
        big_hub.push(repo)
    assert poller.poll() == 3  # the listing of all models had more than 2: each namespace's listing was read
    assert {e.repo for e in store.events.pending()} == set(pushed[:3])
    start = big_hub.requests()
    assert poller.poll() == 0 and big_hub.requests() - start == 1  # the mark of all models moved past them
