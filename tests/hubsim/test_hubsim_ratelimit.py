"""The Hub's rate limits as huggingface_hub sees them: buckets, plans, 5-minute windows, headers, 429s."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils import parse_ratelimit_headers

from bot.hubsim import Directory, HubService, HubsimServer, User
from bot.hubsim.ratelimit import RateLimits

ALICE, PAUL = User("alice", "hf_alice_rl"), User("paul", "hf_paul_rl", plan="pro")


class Clock:
    """Real time, plus whatever a test skips ahead."""

    def __init__(self) -> None:
        self.skipped = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.skipped


@pytest.fixture(scope="module")
def server() -> Iterator[HubsimServer]:
    with HubsimServer(HubService(Directory([ALICE, PAUL]))) as running:
        HfApi(endpoint=running.url, token=ALICE.token).create_repo("alice/limited")
        yield running


@pytest.fixture
def clock(server: HubsimServer) -> Clock:
    """Fresh limits (on, the Hub's quotas) on a clock the test can move."""
    fake = Clock()
    server.hub.rate_limits = RateLimits(enabled=True, clock=fake)
    return fake


def _get(server: HubsimServer, path: str, token: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.get(server.url + path, headers=headers)


def test_every_answer_tells_the_bucket_the_plans_quota_and_what_is_left(server, clock):
    first = parse_ratelimit_headers(_get(server, "/api/models/alice/limited", ALICE.token).headers)
    second = parse_ratelimit_headers(_get(server, "/api/models/alice/limited", ALICE.token).headers)
    assert first is not None and second is not None
    assert (first.resource_type, first.limit, first.window_seconds) == ("api", 1000, 300)
    assert (first.remaining, second.remaining) == (999, 998)
    assert 0 < second.reset_in_seconds <= 300
    pro = parse_ratelimit_headers(_get(server, "/api/whoami-v2", PAUL.token).headers)
    anonymous = parse_ratelimit_headers(_get(server, "/api/models/alice/limited", None).headers)
    assert pro is not None and anonymous is not None
    assert (pro.limit, anonymous.limit) == (2500, 500)  # the documented PRO and anonymous (per IP) figures
    resolve = _get(server, "/alice/limited/resolve/main/.gitattributes", None)
    resolver = parse_ratelimit_headers(resolve.headers)
    page = parse_ratelimit_headers(_get(server, "/alice/limited", None).headers)
    assert resolver is not None and page is not None
    assert (resolver.resource_type, resolver.limit, page.resource_type, page.limit) == (
        "resolvers",
        3000,
        "pages",
        100,
    )


def test_a_spent_quota_is_a_429_the_client_explains_and_other_buckets_still_answer(server, clock, tmp_path):
    server.hub.rate_limits.set_quota("api", 3, user="alice")
    api = HfApi(endpoint=server.url, token=ALICE.token)
    for _ in range(3):
        api.model_info("alice/limited")
    with pytest.raises(HfHubHTTPError) as refused:
        api.model_info("alice/limited")
    response = refused.value.response
    assert response.status_code == 429
    assert "you have reached your 'api' rate limit" in str(refused.value)
    assert "(0/3 requests remaining in current 300s window)" in str(refused.value)
    assert int(response.headers["retry-after"]) == parse_ratelimit_headers(response.headers).reset_in_seconds
    # resolvers and pages have budgets of their own; so has every other user
    hf_hub_download(
        "alice/limited", ".gitattributes", endpoint=server.url, token=ALICE.token, cache_dir=tmp_path
    )
    assert _get(server, "/alice/limited", ALICE.token).status_code == 200
    assert HfApi(endpoint=server.url, token=PAUL.token).model_info("alice/limited").id == "alice/limited"
    clock.skipped += 300  # the window ends: a new one starts
    assert api.model_info("alice/limited").id == "alice/limited"
    limits = server.hub.rate_limits
    assert limits.refused[("alice", "api")] == 1
    assert limits.count(caller="alice", route="GET /api/{rtype}/{ns}/{name}") == 5  # the refused one too


def test_the_client_waits_for_the_reset_the_header_names_then_gets_its_answer(server, clock):
    """huggingface_hub follows a listing's next pages through `http_backoff`, which reads a 429's headers."""
    api = HfApi(endpoint=server.url, token=ALICE.token)
    api.create_repo("alice/limited-2", exist_ok=True)
    server.hub.rate_limits.reset()  # a window of its own for what follows
    server.hub.rate_limits.set_quota("api", 1, user="alice")
    server.hub.page_size = 1
    try:
        pages = iter(api.list_models(author="alice"))
        first = next(pages)  # the first page spends the quota
        clock.skipped += 299  # one second of the window left: the client sleeps t + 1 = 2 s, then retries
        started = time.monotonic()
        rest = list(pages)
    finally:
        server.hub.page_size = None
    assert sorted([first.id, *(m.id for m in rest)]) == ["alice/limited", "alice/limited-2"]
    assert time.monotonic() - started >= 2
    assert server.hub.rate_limits.refused[("alice", "api")] == 1


def test_a_users_own_quota_holds_while_limits_are_off_for_everyone_else(server, clock):
    server.hub.rate_limits.enabled = False
    server.hub.rate_limits.set_quota("api", 1, user="alice")
    assert "ratelimit" not in _get(server, "/api/whoami-v2", PAUL.token).headers
    assert _get(server, "/api/whoami-v2", ALICE.token).status_code == 200
    assert _get(server, "/api/whoami-v2", ALICE.token).status_code == 429


def test_requests_are_counted_by_caller_bucket_and_route_and_the_admin_routes_show_them(server, clock):
    server.hub.rate_limits.enabled = False  # counted whether limits are on or off
    _get(server, "/api/models/alice/limited", ALICE.token)
    _get(server, "/api/models/alice/limited/revision/main", ALICE.token)
    _get(server, "/alice/limited", None)
    limits = server.hub.rate_limits
    assert limits.count(caller="alice", bucket="api") == 2
    assert limits.count(route="GET /api/{rtype}/{ns}/{name}/revision/{rev}") == 1
    assert limits.count(caller="anonymous@127.0.0.1", bucket="pages") == 1
    listed = httpx.get(f"{server.url}/_hubsim/requests", params={"caller": "alice"}).json()
    assert {(i["bucket"], i["route"], i["count"]) for i in listed} == {
        ("api", "GET /api/{rtype}/{ns}/{name}", 1),
        ("api", "GET /api/{rtype}/{ns}/{name}/revision/{rev}", 1),
    }
    answer = httpx.post(f"{server.url}/_hubsim/rate-limits", json={"user": "paul", "quotas": {"api": 20}})
    assert answer.json()["users"] == {"paul": {"api": 20}}
    bad = [{"quotas": {"gpus": 1}}, {"user": "nobody"}, {"enabled": "yes"}]
    assert [httpx.post(f"{server.url}/_hubsim/rate-limits", json=b).status_code for b in bad] == [400] * 3
    assert httpx.delete(f"{server.url}/_hubsim/rate-limits").status_code == 200
    assert limits.count() == 0 and limits.user_quotas == {}


def test_whoami_says_pro_for_a_pro_user(server, clock):
    assert HfApi(endpoint=server.url, token=PAUL.token).whoami()["isPro"] is True
    assert HfApi(endpoint=server.url, token=ALICE.token).whoami()["isPro"] is False
