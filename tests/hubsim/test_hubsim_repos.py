"""Repos through the real client: create / delete, info, listings, tree, refs, commits, settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub.errors import (
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
)


def test_whoami_names_the_user_and_its_orgs(hubsim):
    me = hubsim.api.whoami()
    assert me["name"] == hubsim.user
    assert [o["name"] for o in me["orgs"]] == [hubsim.org]


def test_create_repo_returns_url_and_exist_ok_reads_the_409(hubsim, repo_factory):
    repo_id = repo_factory("created")
    url = hubsim.api.create_repo(repo_id, exist_ok=True)
    assert url.repo_id == repo_id
    assert url.endpoint == hubsim.url
    with pytest.raises(HfHubHTTPError) as excinfo:
        hubsim.api.create_repo(repo_id)
    assert excinfo.value.response.status_code == 409
    assert excinfo.value.response.json()["url"] == f"{hubsim.url}/{repo_id}"


def test_new_repo_has_the_hubs_initial_commit(hubsim, repo_factory):
    info = hubsim.api.model_info(repo_factory())
    assert len(info.sha) == 40
    assert [s.rfilename for s in info.siblings] == [".gitattributes"]


def test_delete_repo_and_missing_ok(hubsim, repo_factory):
    repo_id = repo_factory("doomed")
    hubsim.api.delete_repo(repo_id)
    with pytest.raises(RepositoryNotFoundError):
        hubsim.api.model_info(repo_id)
    hubsim.api.delete_repo(repo_id, missing_ok=True)
    with pytest.raises(RepositoryNotFoundError):
        hubsim.api.delete_repo(repo_id)


def test_model_info_reads_card_config_and_tags(hubsim, repo_factory, model_folder: Path):
    repo_id = repo_factory()
    commit = hubsim.api.upload_folder(repo_id=repo_id, folder_path=model_folder)
    info = hubsim.api.model_info(repo_id, files_metadata=True)
    assert info.sha == commit.oid
    sizes = {s.rfilename: s.size for s in info.siblings}
    assert sizes["model.safetensors"] == 2048
    assert sizes["nested/notes.txt"] == len("line one\nline two\n")
    assert info.card_data["license"] == "apache-2.0"
    assert info.config == {"architectures": ["LlamaForCausalLM"], "model_type": "llama"}
    assert {
        "base_model:hubsim-org/tiny-llama",
        "base_model:quantized:hubsim-org/tiny-llama",
        "fp8",
        "license:apache-2.0",
        "safetensors",
        "llama",
        "transformers",
    } <= set(info.tags)
    assert info.pipeline_tag == "text-generation"
    assert info.last_modified is not None and info.created_at is not None
    assert info.private is False and info.gated is False
    assert info.author == hubsim.user


def test_model_info_at_a_revision(hubsim, repo_factory, model_folder: Path):
    repo_id = repo_factory()
    first = hubsim.api.model_info(repo_id).sha
    hubsim.api.upload_folder(repo_id=repo_id, folder_path=model_folder)
    old = hubsim.api.model_info(repo_id, revision=first)
    assert old.sha == first
    assert [s.rfilename for s in old.siblings] == [".gitattributes"]


def test_list_models_filters_by_base_model_and_pages(hubsim, repo_factory, model_folder: Path):
    ids = []
    for _ in range(3):
        repo_id = repo_factory("quant")
        hubsim.api.upload_folder(repo_id=repo_id, folder_path=model_folder)
        ids.append(repo_id)
    unrelated = repo_factory("plain")
    hubsim.server.page_size = 2  # forces Link pagination
    found = [m.id for m in hubsim.api.list_models(filter="base_model:quantized:hubsim-org/tiny-llama")]
    assert sorted(found) == sorted(ids)
    assert unrelated not in found
    by_author = [m.id for m in hubsim.api.list_models(author=hubsim.user, search="quant")]
    assert sorted(by_author) == sorted(ids)
    newest = next(iter(hubsim.api.list_models(filter="fp8", sort="created_at", limit=1)))
    assert newest.id == ids[-1]
    with_card = next(iter(hubsim.api.list_models(filter="fp8", cardData=True, full=True)))
    assert with_card.card_data["base_model"] == "hubsim-org/tiny-llama"
    assert with_card.siblings


def test_tree_recursive_paged_and_by_path(hubsim, repo_factory, model_folder: Path):
    repo_id = repo_factory()
    hubsim.api.upload_folder(repo_id=repo_id, folder_path=model_folder)
    hubsim.server.page_size = 2
    entries = list(hubsim.api.list_repo_tree(repo_id, recursive=True))
    assert [e.path for e in entries] == [
        ".gitattributes",
        "README.md",
        "config.json",
        "model.safetensors",
        "nested",
        "nested/notes.txt",
    ]
    top = [e.path for e in hubsim.api.list_repo_tree(repo_id)]
    assert "nested/notes.txt" not in top and "nested" in top
    assert [e.path for e in hubsim.api.list_repo_tree(repo_id, path_in_repo="nested")] == ["nested/notes.txt"]
    assert sorted(hubsim.api.list_repo_files(repo_id)) == sorted(
        e.path for e in entries if e.path != "nested"
    )
    with pytest.raises(RemoteEntryNotFoundError):
        list(hubsim.api.list_repo_tree(repo_id, path_in_repo="no/such/folder"))


def test_paths_info_and_expanded_tree(hubsim, repo_factory, model_folder: Path):
    repo_id = repo_factory()
    commit = hubsim.api.upload_folder(repo_id=repo_id, folder_path=model_folder)
    infos = hubsim.api.get_paths_info(repo_id, ["config.json", "nested", "missing.txt"], expand=True)
    assert [i.path for i in infos] == ["config.json", "nested"]
    assert infos[0].last_commit.oid == commit.oid
    assert hubsim.api.file_exists(repo_id, "nested/notes.txt")
    assert not hubsim.api.file_exists(repo_id, "nested/other.txt")


def test_branches_tags_and_commits(hubsim, repo_factory):
    repo_id = repo_factory()
    api = hubsim.api
    for i in range(3):
        api.upload_file(path_or_fileobj=f"v{i}".encode(), path_in_repo="v.txt", repo_id=repo_id)
    hubsim.server.page_size = 2
    commits = api.list_repo_commits(repo_id)
    assert [c.title for c in commits] == ["Upload v.txt with huggingface_hub"] * 3 + ["initial commit"]
    api.create_branch(repo_id, branch="dev", revision=commits[1].commit_id)
    api.create_tag(repo_id, tag="v1.0", revision="dev", tag_message="first")
    api.create_branch(repo_id, branch="dev", exist_ok=True)
    refs = api.list_repo_refs(repo_id)
    assert {b.name: b.target_commit for b in refs.branches}["dev"] == commits[1].commit_id
    assert [(t.name, t.target_commit) for t in refs.tags] == [("v1.0", commits[1].commit_id)]
    assert refs.converts == [] and refs.pull_requests is None
    assert api.model_info(repo_id, revision="v1.0").sha == commits[1].commit_id
    api.delete_tag(repo_id, tag="v1.0")
    api.delete_branch(repo_id, branch="dev")
    assert [b.name for b in api.list_repo_refs(repo_id).branches] == ["main"]


def test_readme_upload_goes_through_validate_yaml(hubsim, repo_factory):
    repo_id = repo_factory()
    hubsim.api.upload_file(
        path_or_fileobj=b"---\nlicense: mit\n---\nhello\n", path_in_repo="README.md", repo_id=repo_id
    )
    assert hubsim.api.model_info(repo_id).card_data["license"] == "mit"
    with pytest.raises(ValueError, match="Invalid YAML"):
        hubsim.api.upload_file(
            path_or_fileobj=b"---\nlicense: [mit\n---\n", path_in_repo="README.md", repo_id=repo_id
        )


def test_card_values_json_cannot_carry_become_strings(hubsim, repo_factory):
    repo_id = repo_factory()
    readme = b"---\nreleased: 2024-05-01\nscore: .nan\n1: one\n---\n"
    hubsim.api.upload_file(path_or_fileobj=readme, path_in_repo="README.md", repo_id=repo_id)
    hubsim.api.upload_file(
        path_or_fileobj=b'{"model_type": "llama", "eps": NaN}', path_in_repo="config.json", repo_id=repo_id
    )
    info = hubsim.api.model_info(repo_id)
    assert info.card_data.to_dict() == {"released": "2024-05-01", "score": "nan", "1": "one"}
    assert info.config == {"model_type": "llama"}


def test_settings_make_a_repo_private(hubsim, repo_factory):
    repo_id = repo_factory()
    hubsim.api.update_repo_settings(repo_id, private=True)
    assert hubsim.api.model_info(repo_id).private is True
    with pytest.raises(RepositoryNotFoundError):
        hubsim.api_for(None).model_info(repo_id)


def test_datasets_work_like_models(hubsim, repo_factory):
    repo_id = repo_factory("data", repo_type="dataset")
    hubsim.api.upload_file(
        path_or_fileobj=b"a,b\n1,2\n", path_in_repo="data.csv", repo_id=repo_id, repo_type="dataset"
    )
    info = hubsim.api.dataset_info(repo_id)
    assert [s.rfilename for s in info.siblings] == [".gitattributes", "data.csv"]
    assert hubsim.api.list_repo_files(repo_id, repo_type="dataset") == [".gitattributes", "data.csv"]
