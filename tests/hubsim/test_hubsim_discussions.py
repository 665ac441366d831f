"""Discussions and pull requests through the real client."""

from __future__ import annotations

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete
from huggingface_hub.errors import BadRequestError, HfHubHTTPError, RemoteEntryNotFoundError


def test_discussion_lifecycle(hubsim, repo_factory):
    repo_id = repo_factory()
    api = hubsim.api
    created = api.create_discussion(repo_id, "Please add fp8", description="Would be great.")
    assert (created.num, created.status, created.is_pull_request) == (1, "open", False)
    assert created.events[0].content == "Would be great."
    reply = api.comment_discussion(repo_id, created.num, "On it")
    edited = api.edit_discussion_comment(repo_id, created.num, reply.id, "On it, tomorrow")
    assert (edited.content, edited.edited) == ("On it, tomorrow", True)
    api.rename_discussion(repo_id, created.num, "Please add an fp8 build")
    closed = api.change_discussion_status(repo_id, created.num, "closed", comment="Done elsewhere")
    assert closed.new_status == "closed"
    details = api.get_discussion_details(repo_id, created.num)
    assert details.title == "Please add an fp8 build"
    assert details.status == "closed"
    assert [e.type for e in details.events] == [
        "comment",
        "comment",
        "title-change",
        "status-change",
        "comment",
    ]
    assert details.events[1].content == "On it, tomorrow"
    assert (details.events[2].old_title, details.events[2].new_title) == (
        "Please add fp8",
        "Please add an fp8 build",
    )
    with pytest.raises(BadRequestError):
        api.change_discussion_status(repo_id, created.num, "closed")


def test_listing_pages_and_filters(hubsim, repo_factory):
    repo_id = repo_factory()
    for i in range(5):
        hubsim.api.create_discussion(repo_id, f"question {i}", pull_request=i % 2 == 1)
    hubsim.api.change_discussion_status(repo_id, 1, "closed")
    hubsim.server.page_size = 2  # three pages
    everything = list(hubsim.api.get_repo_discussions(repo_id))
    assert [d.num for d in everything] == [5, 4, 3, 2, 1]
    assert {d.repo_id for d in everything} == {repo_id}
    prs = list(hubsim.api.get_repo_discussions(repo_id, discussion_type="pull_request"))
    assert [(d.num, d.status) for d in prs] == [(4, "draft"), (2, "draft")]
    assert [d.num for d in hubsim.api.get_repo_discussions(repo_id, discussion_status="closed")] == [1]
    assert list(hubsim.api.get_repo_discussions(repo_id, author=hubsim.other_user)) == []


def test_upload_folder_as_pr_then_merge(hubsim, repo_factory, model_folder, lfs_client):
    """upload_folder(create_pr=True) without Xet: one commit with ?create_pr=1, LFS files included."""
    repo_id = repo_factory()
    api = hubsim.api
    before = api.model_info(repo_id).sha
    commit = api.upload_folder(
        repo_id=repo_id, folder_path=model_folder, create_pr=True, commit_message="Add fp8"
    )
    assert commit.pr_revision == "refs/pr/1"
    assert api.model_info(repo_id).sha == before  # main is untouched until the merge
    assert "config.json" in api.list_repo_files(repo_id, revision="refs/pr/1")
    refs = api.list_repo_refs(repo_id, include_pull_requests=True)
    assert [(r.ref, r.target_commit) for r in refs.pull_requests] == [("refs/pr/1", commit.oid)]
    pr = api.get_discussion_details(repo_id, commit.pr_num)
    assert pr.is_pull_request and pr.target_branch == "refs/heads/main" and pr.conflicting_files == []
    assert "+++ b/config.json" in pr.diff
    assert [e.type for e in pr.events] == ["commit"]
    api.merge_pull_request(repo_id, commit.pr_num, comment="Thanks!")
    merged = api.get_discussion_details(repo_id, commit.pr_num)
    assert merged.status == "merged"
    main = api.model_info(repo_id)
    assert merged.merge_commit_oid == main.sha
    assert {s.rfilename for s in main.siblings} >= {"config.json", "README.md", "nested/notes.txt"}
    assert [e.type for e in merged.events][-2:] == ["status-change", "comment"]
    history = api.list_repo_commits(repo_id)
    assert history[0].title == "Add fp8 (#1)"
    with pytest.raises(BadRequestError):
        api.merge_pull_request(repo_id, commit.pr_num)


def test_create_commit_with_create_pr_and_pushing_more_to_the_pr(hubsim, repo_factory):
    repo_id = repo_factory()
    api = hubsim.api
    info = api.create_commit(
        repo_id, [CommitOperationAdd("a.txt", b"a")], commit_message="Add a", create_pr=True
    )
    assert info.pr_num == 1 and info.pr_url.endswith("/discussions/1")
    assert api.get_discussion_details(repo_id, 1).status == "open"
    second = api.create_commit(
        repo_id, [CommitOperationAdd("b.txt", b"b")], commit_message="Add b", revision=info.pr_revision
    )
    assert (
        api.list_repo_refs(repo_id, include_pull_requests=True).pull_requests[0].target_commit == second.oid
    )
    assert sorted(api.list_repo_files(repo_id, revision="refs/pr/1")) == [".gitattributes", "a.txt", "b.txt"]
    events = api.get_discussion_details(repo_id, 1).events
    assert [e.summary for e in events if e.type == "commit"] == ["Add a", "Add b"]
    api.merge_pull_request(repo_id, 1)
    assert sorted(api.list_repo_files(repo_id)) == [".gitattributes", "a.txt", "b.txt"]


def test_a_failed_pr_commit_opens_no_pr(hubsim, repo_factory):
    repo_id = repo_factory()
    with pytest.raises(RemoteEntryNotFoundError):
        hubsim.api.create_commit(
            repo_id, [CommitOperationDelete("missing.txt")], commit_message="x", create_pr=True
        )
    assert list(hubsim.api.get_repo_discussions(repo_id)) == []


def test_merge_applies_changes_onto_a_moved_main(hubsim, repo_factory):
    repo_id = repo_factory()
    api = hubsim.api
    api.upload_file(path_or_fileobj=b"old", path_in_repo="keep.txt", repo_id=repo_id)
    pr = api.create_commit(
        repo_id,
        [CommitOperationDelete("keep.txt"), CommitOperationAdd("pr.txt", b"pr")],
        commit_message="PR change",
        create_pr=True,
    )
    api.upload_file(path_or_fileobj=b"main moved", path_in_repo="main.txt", repo_id=repo_id)
    api.merge_pull_request(repo_id, pr.pr_num)
    assert sorted(api.list_repo_files(repo_id)) == [".gitattributes", "main.txt", "pr.txt"]


def test_conflicting_pr_cannot_be_merged(hubsim, repo_factory):
    repo_id = repo_factory()
    api = hubsim.api
    pr = api.create_commit(
        repo_id, [CommitOperationAdd("x.txt", b"pr")], commit_message="PR x", create_pr=True
    )
    api.upload_file(path_or_fileobj=b"main", path_in_repo="x.txt", repo_id=repo_id)
    assert api.get_discussion_details(repo_id, pr.pr_num).conflicting_files == ["x.txt"]
    with pytest.raises(HfHubHTTPError) as excinfo:
        api.merge_pull_request(repo_id, pr.pr_num)
    assert excinfo.value.response.status_code == 409


def test_hidden_comment_loses_its_text(hubsim, repo_factory):
    repo_id = repo_factory()
    discussion = hubsim.api.create_discussion(repo_id, "spam here", description="buy now")
    comment_id = discussion.events[0].id
    with pytest.warns(UserWarning):
        hidden = hubsim.api.hide_discussion_comment(repo_id, discussion.num, comment_id)
    assert hidden.hidden is True and "buy now" not in hidden.content


def test_a_dashboard_is_edited_in_place_and_its_owner_pins_it_on_the_page(
    hubsim, repo_factory, webhook_receiver
):
    """A bot's status comment edited again and again stays one comment; pinning is the owners' button."""
    repo_id = repo_factory("dashboard")
    dashboard = hubsim.other_api.create_discussion(repo_id, "Release dashboard", description="0 of 3 built")
    hubsim.other_api.create_discussion(repo_id, "Newer question", description="?")
    hook = hubsim.server.register_webhook(webhook_receiver.url, watched=[{"type": "model", "name": repo_id}])
    try:
        first = dashboard.events[0].id
        for built in (1, 2, 3):
            hubsim.other_api.edit_discussion_comment(repo_id, dashboard.num, first, f"{built} of 3 built")
        webhook_receiver.wait(lambda p: p.get("comment", {}).get("content") == "3 of 3 built")
    finally:
        hubsim.server.webhooks.hooks.pop(hook.id)
    [comment] = hubsim.api.get_discussion_details(repo_id, dashboard.num).events
    assert (comment.id, comment.content, comment.edited) == (first, "3 of 3 built", True)
    assert all(p["event"]["action"] == "update" for p in (r.payload for r in webhook_receiver.received))
    with httpx.Client(base_url=hubsim.url) as stranger, httpx.Client(base_url=hubsim.url) as owner:
        stranger.post("/login", data={"token": hubsim.other_token})
        assert stranger.post(f"/{repo_id}/discussions/{dashboard.num}/pin").status_code == 403
        owner.post("/login", data={"token": hubsim.token})
        assert owner.post(f"/{repo_id}/discussions/{dashboard.num}/pin").status_code == 303
        community = owner.get(f"/{repo_id}/discussions").text
    assert community.index("Release dashboard") < community.index("Newer question")  # pinned first
    listed = httpx.get(f"{hubsim.url}/api/models/{repo_id}/discussions").json()["discussions"]
    assert {d["title"]: d["pinned"] for d in listed} == {"Release dashboard": True, "Newer question": False}
