"""Repo names as the Hub treats them: any case resolves to the canonical id, and a moved repo's old name
redirects to the new one."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from huggingface_hub import WebhookPayload, hf_hub_download, snapshot_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

WEIGHTS = b"\x00\x01" * 2048


def _swapcase_id(repo_id: str) -> str:
    namespace, name = repo_id.split("/")
    return f"{namespace.upper()}/{name.swapcase()}"


def test_any_case_resolves_on_every_route_and_the_canonical_id_comes_back(hubsim, repo_factory, tmp_path):
    repo_id = repo_factory("MixedCase")
    other = _swapcase_id(repo_id)
    api = hubsim.api
    commit = api.upload_file(path_or_fileobj=WEIGHTS, path_in_repo="model.safetensors", repo_id=other)
    assert api.model_info(other).id == repo_id and api.model_info(repo_id).sha == commit.oid
    assert commit.commit_url.startswith(f"{hubsim.url}/{repo_id}/commit/")
    assert api.list_repo_files(other) == [".gitattributes", "model.safetensors"]
    path = hf_hub_download(other, "model.safetensors", token=hubsim.token, cache_dir=tmp_path)
    assert Path(path).read_bytes() == WEIGHTS
    assert Path(snapshot_download(other, token=hubsim.token, cache_dir=tmp_path / "s")).name == commit.oid
    discussion = api.create_discussion(other, title="hello")
    assert api.get_discussion_details(repo_id, discussion.num).title == "hello"
    assert api.list_repo_refs(other).branches[0].target_commit == commit.oid


def test_create_repo_in_another_case_is_a_409_with_the_canonical_url(hubsim, repo_factory):
    repo_id = repo_factory("Canonical")
    other = _swapcase_id(repo_id)
    with pytest.raises(HfHubHTTPError) as excinfo:
        hubsim.api.create_repo(other)
    assert excinfo.value.response.status_code == 409
    assert excinfo.value.response.json()["url"] == f"{hubsim.url}/{repo_id}"
    assert hubsim.api.create_repo(other, exist_ok=True).repo_id == repo_id


def test_watch_and_webhooks_match_names_in_any_case(hubsim, repo_factory, webhook_receiver):
    repo_id = repo_factory("hooked")
    hook = hubsim.server.register_webhook(
        webhook_receiver.url, watched=[{"type": "model", "name": repo_id.upper()}], owner=hubsim.user
    )
    try:
        hubsim.api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo_id)
        assert webhook_receiver.wait(lambda p: p["repo"]["name"] == repo_id)
    finally:
        del hubsim.server.webhooks.hooks[hook.id]


def _unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def moved(hubsim, repo_factory, webhook_receiver):
    """A repo with an LFS file, a discussion and a hook, moved to a new name: `(old, new, commit oid)`."""
    old = repo_factory("before")
    commit = hubsim.api.upload_file(path_or_fileobj=WEIGHTS, path_in_repo="w.safetensors", repo_id=old)
    hubsim.api.create_discussion(old, title="kept across the move")
    hook = hubsim.server.register_webhook(webhook_receiver.url, watched=[{"type": "model", "name": old}])
    new = f"{hubsim.org}/{_unique('after')}"
    hubsim.api.move_repo(old, new)
    yield old, new, commit.oid
    del hubsim.server.webhooks.hooks[hook.id]
    hubsim.api.delete_repo(new, missing_ok=True)


def test_move_repo_sends_a_move_event_with_moved_to(hubsim, moved, webhook_receiver):
    old, new, _ = moved
    received = webhook_receiver.wait(lambda p: p["event"]["action"] == "move")
    payload = WebhookPayload.model_validate(received.payload)  # the client's own model of the payload
    assert (payload.event.scope, payload.repo.name) == ("repo", old)
    assert payload.movedTo is not None and payload.movedTo.name == new
    assert payload.movedTo.owner.id == hubsim.server.users.owner_id(hubsim.org)
    assert payload.repo.id == hubsim.server.repos[("model", new)].id  # the same repo, under its new name


def test_the_old_name_redirects_with_a_307_that_the_client_follows(hubsim, moved, tmp_path):
    old, new, oid = moved
    raw = httpx.get(f"{hubsim.url}/api/models/{old}/revision/main?expand=sha", headers=_auth(hubsim))
    assert raw.status_code == 307 and raw.headers["location"] == f"/api/models/{new}/revision/main?expand=sha"
    assert hubsim.api.model_info(old).id == new
    assert hubsim.api.model_info(new).sha == oid
    assert hubsim.api.get_discussion_details(old, 1).title == "kept across the move"
    path = hf_hub_download(old, "w.safetensors", token=hubsim.token, cache_dir=tmp_path)
    assert Path(path).read_bytes() == WEIGHTS
    commit = hubsim.api.upload_file(path_or_fileobj=b"later", path_in_repo="later.txt", repo_id=old)
    assert hubsim.api.model_info(new).sha == commit.oid
    lfs_batch = httpx.post(
        f"{hubsim.url}/{old}.git/info/lfs/objects/batch", json={"operation": "upload"}, headers=_auth(hubsim)
    )
    assert (
        lfs_batch.status_code == 307 and lfs_batch.headers["location"] == f"/{new}.git/info/lfs/objects/batch"
    )


def test_the_old_name_is_not_found_where_it_is_not_in_the_path_or_for_who_cannot_see(hubsim, moved):
    old, new, _ = moved
    with pytest.raises(RepositoryNotFoundError):
        hubsim.api.delete_repo(old)  # the name is in the body: nothing to redirect
    hubsim.api.update_repo_settings(new, private=True)
    with pytest.raises(RepositoryNotFoundError):
        hubsim.api_for(None).model_info(old)
    assert hubsim.api.model_info(old).id == new


def test_a_new_repo_at_the_old_name_takes_it_back(hubsim, moved):
    old, new, _ = moved
    hubsim.api.create_repo(old)
    try:
        assert hubsim.api.model_info(old).id == old
        assert hubsim.api.model_info(new).id == new
    finally:
        hubsim.api.delete_repo(old)


def test_move_refusals(hubsim, repo_factory):
    first, second = repo_factory("first"), repo_factory("second")
    with pytest.raises(HfHubHTTPError) as taken:
        hubsim.api.move_repo(first, second.upper())
    assert taken.value.response.status_code == 409
    with pytest.raises(HfHubHTTPError) as forbidden:
        hubsim.other_api.move_repo(first, f"{hubsim.other_user}/{_unique('stolen')}")
    assert forbidden.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as elsewhere:
        hubsim.api.move_repo(first, f"{hubsim.other_user}/{_unique('pushed')}")
    assert elsewhere.value.response.status_code == 403
    assert hubsim.api.model_info(first).id == first


def test_a_move_survives_a_restart(tmp_path):
    from huggingface_hub import HfApi

    from bot.hubsim import Directory, HubService, HubsimServer, User

    data = tmp_path / "data"
    with HubsimServer(HubService(Directory([User("alice", "hf_alice")]), data)) as server:
        api = HfApi(endpoint=server.url, token="hf_alice")
        api.create_repo("alice/old")
        api.move_repo("alice/old", "alice/new")
    with HubsimServer(HubService(data_dir=data)) as server:
        assert HfApi(endpoint=server.url, token="hf_alice").model_info("ALICE/Old").id == "alice/new"


def _auth(hubsim) -> dict[str, str]:
    return {"authorization": f"Bearer {hubsim.token}"}
