"""Who may do what: owners and org members write; anyone signed in opens discussions and PRs."""

from __future__ import annotations

import pytest
from huggingface_hub import CommitOperationAdd
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError


def _status(excinfo: pytest.ExceptionInfo[HfHubHTTPError]) -> int:
    return excinfo.value.response.status_code


def test_other_user_cannot_write_to_my_repo(hubsim, repo_factory):
    repo_id = repo_factory()
    with pytest.raises(HfHubHTTPError) as excinfo:
        hubsim.other_api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo_id)
    assert _status(excinfo) == 403
    with pytest.raises(HfHubHTTPError) as excinfo:
        hubsim.other_api.delete_repo(repo_id)
    assert _status(excinfo) == 403
    with pytest.raises(HfHubHTTPError) as excinfo:
        hubsim.other_api.create_branch(repo_id, branch="mine")
    assert _status(excinfo) == 403
    with pytest.raises(HfHubHTTPError) as excinfo:
        hubsim.other_api.create_repo(f"{hubsim.user}/squatting")
    assert _status(excinfo) == 403


def test_org_members_write_in_the_org_namespace(hubsim, repo_factory):
    repo_id = repo_factory("org-repo", namespace=hubsim.org)
    hubsim.api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo_id)
    with pytest.raises(HfHubHTTPError) as excinfo:
        hubsim.other_api.upload_file(path_or_fileobj=b"x", path_in_repo="y.txt", repo_id=repo_id)
    assert _status(excinfo) == 403
    with pytest.raises(HfHubHTTPError) as excinfo:
        hubsim.other_api.create_repo(f"{hubsim.org}/not-a-member")
    assert _status(excinfo) == 403


def test_other_user_opens_a_pr_but_cannot_merge_it(hubsim, repo_factory, model_folder):
    repo_id = repo_factory()
    other = hubsim.other_api
    pr = other.upload_folder(repo_id=repo_id, folder_path=model_folder, create_pr=True)
    other.create_commit(
        repo_id, [CommitOperationAdd("more.txt", b"m")], commit_message="More", revision=pr.pr_revision
    )
    other.comment_discussion(repo_id, pr.pr_num, "please review")
    with pytest.raises(HfHubHTTPError) as excinfo:
        other.merge_pull_request(repo_id, pr.pr_num)
    assert _status(excinfo) == 403
    hubsim.api.merge_pull_request(repo_id, pr.pr_num)
    assert "more.txt" in hubsim.api.list_repo_files(repo_id)


def test_only_authors_and_owners_change_a_discussion(hubsim, repo_factory):
    repo_id = repo_factory()
    mine = hubsim.api.create_discussion(repo_id, "owner's topic")
    theirs = hubsim.other_api.create_discussion(repo_id, "visitor's topic", description="hello")
    with pytest.raises(HfHubHTTPError) as excinfo:
        hubsim.other_api.change_discussion_status(repo_id, mine.num, "closed")
    assert _status(excinfo) == 403
    hubsim.other_api.change_discussion_status(repo_id, theirs.num, "closed")
    with pytest.raises(HfHubHTTPError) as excinfo:
        hubsim.api.edit_discussion_comment(repo_id, theirs.num, theirs.events[0].id, "rewritten by the owner")
    assert _status(excinfo) == 403


def test_bad_or_missing_token(hubsim, repo_factory):
    repo_id = repo_factory()
    bad = hubsim.api_for("hf_not_a_real_token")
    with pytest.raises(HfHubHTTPError) as excinfo:
        bad.model_info(repo_id)
    assert _status(excinfo) == 401
    with pytest.raises(HfHubHTTPError) as excinfo:
        bad.whoami()
    assert _status(excinfo) == 401
    anonymous = hubsim.api_for(None)
    assert anonymous.model_info(repo_id).id == repo_id  # public repos are readable without a token
    with pytest.raises(HfHubHTTPError) as excinfo:
        anonymous.create_discussion(repo_id, "anonymous question")
    assert _status(excinfo) == 401


def test_private_repos_are_hidden_from_others(hubsim, repo_factory):
    repo_id = repo_factory("secret", private=True)
    assert hubsim.api.model_info(repo_id).private is True
    for api in (hubsim.other_api, hubsim.api_for(None)):
        with pytest.raises(RepositoryNotFoundError):
            api.model_info(repo_id)
        assert repo_id not in [m.id for m in api.list_models(author=hubsim.user)]
    assert repo_id in [m.id for m in hubsim.api.list_models(author=hubsim.user)]


def test_private_org_repo_is_visible_to_members(hubsim, repo_factory):
    repo_id = repo_factory("org-secret", namespace=hubsim.org, private=True)
    assert hubsim.api.model_info(repo_id).private
    with pytest.raises(RepositoryNotFoundError):
        hubsim.other_api.model_info(repo_id)
