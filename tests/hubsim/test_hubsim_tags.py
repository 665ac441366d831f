"""Git tags through the real client: create, list, resolve as a revision (info and downloads), delete; the
webhook a new tag sends; tags on the Files and versions pages."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import BadRequestError, HfHubHTTPError, RevisionNotFoundError


def test_a_tag_names_a_commit_for_info_and_downloads_until_it_is_deleted(hubsim, repo_factory, tmp_path):
    repo_id = repo_factory("tagged")
    first = hubsim.api.upload_file(repo_id=repo_id, path_or_fileobj=b"one", path_in_repo="notes.txt").oid
    hubsim.api.create_tag(repo_id, tag="upstream-v1", tag_message="built from v1")
    hubsim.api.upload_file(repo_id=repo_id, path_or_fileobj=b"two", path_in_repo="notes.txt")
    hubsim.api.create_tag(repo_id, tag="release/2")  # at main: the new tip
    refs = hubsim.api.list_repo_refs(repo_id)
    tips = {tag.name: (tag.ref, tag.target_commit) for tag in refs.tags}
    main = refs.branches[0].target_commit
    assert tips == {
        "upstream-v1": ("refs/tags/upstream-v1", first),
        "release/2": ("refs/tags/release/2", main),
    }
    assert hubsim.api.model_info(repo_id, revision="upstream-v1").sha == first
    old = hf_hub_download(
        repo_id, "notes.txt", revision="upstream-v1", cache_dir=tmp_path, token=hubsim.token
    )
    assert Path(old).read_bytes() == b"one"
    hubsim.api.create_tag(repo_id, tag="upstream-v1", exist_ok=True)  # the Hub's 409, read by the client
    with pytest.raises(HfHubHTTPError) as taken:
        hubsim.api.create_tag(repo_id, tag="upstream-v1")
    assert taken.value.response.status_code == 409
    with pytest.raises(BadRequestError):  # a tag is not a branch: no commit lands on it
        hubsim.api.upload_file(
            repo_id=repo_id, path_or_fileobj=b"x", path_in_repo="x.txt", revision="upstream-v1"
        )
    hubsim.api.delete_tag(repo_id, tag="upstream-v1")
    assert [tag.name for tag in hubsim.api.list_repo_refs(repo_id).tags] == ["release/2"]
    with pytest.raises(RevisionNotFoundError):
        hubsim.api.model_info(repo_id, revision="upstream-v1")


def test_a_new_tag_sends_a_repo_content_webhook(hubsim, repo_factory, webhook_receiver):
    repo_id = repo_factory("hooked-tag")
    hook = hubsim.server.register_webhook(webhook_receiver.url, watched=[{"type": "model", "name": repo_id}])
    try:
        hubsim.api.create_tag(repo_id, tag="v1")
        received = webhook_receiver.wait(lambda p: p["event"]["scope"] == "repo.content")
    finally:
        hubsim.server.webhooks.hooks.pop(hook.id)
    [ref] = received.payload["updatedRefs"]
    assert (ref["ref"], ref["oldSha"]) == ("refs/tags/v1", None)
    assert ref["newSha"] == hubsim.api.model_info(repo_id).sha


def test_tags_show_on_the_files_and_versions_pages(hubsim, repo_factory):
    repo_id = repo_factory("tag-pages")
    hubsim.api.create_tag(repo_id, tag="v0.1")
    tree = httpx.get(f"{hubsim.url}/{repo_id}/tree/main").text
    assert f'<a href="/{repo_id}/tree/v0.1/">tag: v0.1</a>' in tree
    commits = httpx.get(f"{hubsim.url}/{repo_id}/commits/main").text
    assert f'<a class="badge tag" href="/{repo_id}/tree/v0.1/">tag: v0.1</a>' in commits
    assert httpx.get(f"{hubsim.url}/{repo_id}/tree/v0.1").status_code == 200
