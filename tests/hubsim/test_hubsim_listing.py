"""Listings as the Hub answers them, through the real client: item fields, `full`, `expand`, sort, direction,
limit and pages, and the downloads and likes counts tests set."""

from __future__ import annotations

import uuid

import httpx
import pytest
from huggingface_hub.errors import HfHubHTTPError


@pytest.fixture
def trio(hubsim, repo_factory):
    """Three models under a name no other test uses (for `search=`), made oldest first."""
    tag = uuid.uuid4().hex[:8]
    return tag, [repo_factory(f"listed-{tag}-{i}") for i in range(3)]


def _stats(hubsim, repo_id: str, **values: int) -> httpx.Response:
    return httpx.post(f"{hubsim.url}/_hubsim/models/{repo_id}/stats", json=values)


def test_a_listing_item_has_the_hubs_default_fields_and_full_adds_sha_date_and_files(hubsim, trio):
    tag, ids = trio
    plain = next(iter(hubsim.api.list_models(search=tag, limit=1)))
    assert plain.downloads == 0 and plain.likes == 0 and plain.created_at is not None and plain.tags
    assert (plain.sha, plain.last_modified, plain.siblings, plain.author) == (None, None, None, None)
    full = next(iter(hubsim.api.list_models(search=tag, limit=1, full=True)))
    assert full.sha is not None and full.last_modified is not None and full.author == hubsim.user
    assert [s.rfilename for s in full.siblings] == [".gitattributes"]
    assert full.card_data is None and full.config is None  # cardData and config are asked for apart


def test_expand_returns_exactly_the_properties_named_and_refuses_others(hubsim, trio):
    tag, ids = trio
    _stats(hubsim, ids[0], downloads=7, likes=2)
    by_id = {m.id: m for m in hubsim.api.list_models(search=tag, expand=["downloads", "sha"])}
    assert by_id[ids[0]].downloads == 7 and by_id[ids[0]].sha is not None
    assert by_id[ids[0]].likes is None and by_id[ids[0]].created_at is None
    for bad in (["foo"], ["childrenModelCount"], ["baseModels"]):  # the last two: `model_info` only
        with pytest.raises(HfHubHTTPError) as refused:
            list(hubsim.api.list_models(search=tag, expand=bad))
        assert refused.value.response.status_code == 400
    info = hubsim.api.model_info(ids[0], expand=["likes", "downloadsAllTime", "usedStorage"])
    assert (info.likes, info.downloads_all_time, info.downloads, info.sha) == (2, 0, None, None)
    assert info.used_storage is not None and info.used_storage > 0
    with pytest.raises(HfHubHTTPError) as refused:
        hubsim.api.model_info(ids[0], expand=["bogus"])
    assert refused.value.response.status_code == 400


def test_sorts_are_descending_unless_a_direction_says_otherwise(hubsim, trio):
    tag, ids = trio
    for repo_id, downloads, likes in zip(ids, (5, 50, 1), (3, 1, 2), strict=True):
        assert _stats(hubsim, repo_id, downloads=downloads, likes=likes).status_code == 200
    hubsim.api.upload_file(repo_id=ids[0], path_or_fileobj=b"new", path_in_repo="notes.txt")
    order = {
        sort: [m.id for m in hubsim.api.list_models(search=tag, sort=sort)]
        for sort in ("downloads", "likes", "created_at", "last_modified", "lastModified")
    }
    assert order["downloads"] == [ids[1], ids[0], ids[2]]
    assert order["likes"] == [ids[0], ids[2], ids[1]]
    assert order["created_at"] == ids[::-1]
    assert order["last_modified"] == order["lastModified"] == [ids[0], ids[2], ids[1]]
    # the client sends no `direction`; the Hub's docs: -1 descending, anything else ascending
    raw = hubsim.api.endpoint + "/api/models"
    ascending = httpx.get(raw, params={"search": tag, "sort": "downloads", "direction": "1"}).json()
    assert [m["id"] for m in ascending] == [ids[2], ids[0], ids[1]]
    descending = httpx.get(raw, params={"search": tag, "sort": "downloads", "direction": "-1"}).json()
    assert [m["id"] for m in descending] == order["downloads"]
    assert httpx.get(raw, params={"sort": "popularity"}).status_code == 400


def test_pages_follow_link_headers_and_limit_stops_early(hubsim, trio):
    tag, ids = trio
    first = httpx.get(f"{hubsim.url}/api/models", params={"search": tag, "limit": 2})
    assert len(first.json()) == 2 and 'rel="next"' in first.headers["link"]
    hubsim.server.page_size = 1
    assert len(list(hubsim.api.list_models(search=tag))) == 3  # three pages, followed by `Link`
    assert len(list(hubsim.api.list_models(search=tag, limit=2))) == 2


def test_stats_tests_set_show_on_model_info_and_are_checked(hubsim, trio):
    _, ids = trio
    answer = _stats(hubsim, ids[0], downloads=1200, downloadsAllTime=5000, likes=4, trendingScore=9)
    assert answer.json() == {"downloads": 1200, "downloadsAllTime": 5000, "likes": 4, "trendingScore": 9}
    info = hubsim.api.model_info(ids[0])
    assert (info.downloads, info.downloads_all_time, info.likes, info.trending_score) == (1200, 5000, 4, 9)
    assert _stats(hubsim, ids[0], stars=3).status_code == 400
    assert _stats(hubsim, ids[0], likes=-1).status_code == 400
    assert httpx.post(f"{hubsim.url}/_hubsim/models/nobody/none/stats", json={}).status_code == 400


def test_likes_come_from_a_signed_in_browser_and_a_token_may_only_unlike(hubsim, trio):
    _, ids = trio
    repo_id = ids[0]
    with_token = httpx.post(
        f"{hubsim.url}/api/models/{repo_id}/like", headers={"authorization": f"Bearer {hubsim.token}"}
    )
    assert with_token.status_code == 403  # the Hub stopped taking likes from scripts
    with httpx.Client(base_url=hubsim.url) as browser:
        browser.post("/login", data={"token": hubsim.other_token, "next": "/"})
        assert browser.post(f"/{repo_id}/like").status_code == 303  # the page's like button
        assert "♥ Liked" in browser.get(f"/{repo_id}").text
        assert browser.post(f"/api/models/{repo_id}/like").status_code == 200  # liking twice is one like
    assert hubsim.api.model_info(repo_id).likes == 1
    assert repo_id in hubsim.api.list_liked_repos(hubsim.other_user).models
    assert [u.username for u in hubsim.api.list_repo_likers(repo_id)] == [hubsim.other_user]
    hubsim.other_api.unlike(repo_id)
    assert hubsim.api.model_info(repo_id).likes == 0
    assert hubsim.api.list_liked_repos(hubsim.other_user).total == 0
    with pytest.raises(HfHubHTTPError) as missing:
        hubsim.api.list_liked_repos("nobody-at-all")
    assert missing.value.response.status_code == 404
