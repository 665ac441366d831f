"""Publishing real builds to hubsim with the real huggingface_hub client: new repos, pull requests, the same
release twice, maintainers' decisions, superseding, faults and interrupted uploads, permissions.

The bot is hubsim's default user (`hubsim.user`); model authors and maintainers are `hubsim.other_user`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, ModelCard, hf_hub_download
from huggingface_hub.errors import GatedRepoError

from bot.errors import HubRateLimited, HubUnavailable, NoWriteAccess, PublishError, UsageError
from bot.hub import MAX_ATTEMPTS
from bot.publishing.lookup import ReleaseLookup, ReleaseTag
from bot.publishing.publisher import Publisher
from builders.spec import Artifact, Device, EngineRecord, Manifest
from state.models import ReleaseKind, ReleaseStatus

pytestmark = pytest.mark.slow


def _manifest(build) -> Manifest:
    return Manifest.read(build / "manifest.json")


def _files(api: HfApi, repo_id: str, revision: str | None = None) -> set[str]:
    return set(api.list_repo_files(repo_id, revision=revision))


def _artifact_paths(build) -> set[str]:
    return {a.path for a in _manifest(build).artifacts}


def _bot_prs(api: HfApi, repo_id: str) -> list:
    return [d for d in api.get_repo_discussions(repo_id, discussion_type="pull_request")]


def _main_states(hubsim, repo_id: str) -> list[set[str]]:
    """The file sets `main` has pointed to, newest first (hubsim's first-parent chain of main)."""
    repo = hubsim.server.repos[("model", repo_id)]
    commit = repo.commits[repo.refs["refs/heads/main"]]
    states = [set(commit.files)]
    while commit.parents:
        commit = repo.commits[commit.parents[0]]
        states.append(set(commit.files))
    return states


def _maintainer_repo(hubsim, repo_factory) -> str:
    """A repo owned by a maintainer (other_user), where the bot may only open pull requests."""
    repo_id = repo_factory("tiny-quantized", token=hubsim.other_token)
    hubsim.other_api.upload_file(
        path_or_fileobj=b"# Maintainer's release repo\n", path_in_repo="README.md", repo_id=repo_id
    )
    return repo_id


# ---------------------------------------------------------------------------------------------- new repo


def test_new_repo_release_lands_on_main_in_one_step(
    publisher, builds, upstream, hubsim, release_repo
) -> None:
    build = builds.get(upstream.repo_id, upstream.revisions[0], "int4_awq")
    repo_id = release_repo("tiny-int4")

    result = publisher.publish(build, repo_id=repo_id)

    assert (result.status, result.kind, result.url) == (
        ReleaseStatus.PUBLISHED,
        ReleaseKind.REPO,
        f"{hubsim.url}/{repo_id}",
    )
    api, manifest = hubsim.api, _manifest(build)
    released = {".gitattributes", "README.md", "manifest.json", "LICENSE"} | _artifact_paths(build)
    assert _files(api, repo_id) == released
    published = json.loads(Path(hf_hub_download(repo_id, "manifest.json", endpoint=hubsim.url)).read_text())
    assert published["key"] == manifest.key == result.key
    weights = next(a for a in manifest.artifacts if a.path.endswith(".safetensors"))
    data = Path(hf_hub_download(repo_id, weights.path, endpoint=hubsim.url)).read_bytes()
    assert hashlib.sha256(data).hexdigest() == weights.sha256
    card = ModelCard.load(repo_id, token=hubsim.token)
    assert card.data.base_model == upstream.repo_id and card.data.base_model_relation == "quantized"
    assert card.data.license_name == "tiny-llama-license"
    # No state main ever pointed to showed artifacts without their card and manifest.
    states = _main_states(hubsim, repo_id)
    assert states[-1] == {".gitattributes"} and len(states) == 2
    assert states[0] == released
    # The Hub derives the quantized relation from the card, as its model search does.
    assert f"base_model:quantized:{upstream.repo_id}" in api.model_info(repo_id).tags
    # The release commit is tagged with the upstream revision it was built from.
    [tag] = api.list_repo_refs(repo_id).tags
    assert tag.name == f"upstream-{upstream.revisions[0][:12]}"
    assert tag.target_commit == api.model_info(repo_id).sha


def test_publishing_the_same_build_again_changes_nothing(
    publisher, builds, upstream, hubsim, release_repo
) -> None:
    build = builds.get(upstream.repo_id, upstream.revisions[0], "fp8")
    repo_id = release_repo("tiny-fp8")
    publisher.publish(build, repo_id=repo_id)
    commits = len(hubsim.api.list_repo_commits(repo_id))

    again = publisher.publish(build, repo_id=repo_id)

    assert again.status is ReleaseStatus.PUBLISHED and "already published" in again.message
    assert len(hubsim.api.list_repo_commits(repo_id)) == commits
    assert len(_bot_prs(hubsim.api, repo_id)) == 1


def test_repo_id_comes_from_the_name_template(publisher, builds, upstream, hubsim) -> None:
    build = builds.get(upstream.repo_id, upstream.revisions[0], "gptq")
    model = upstream.repo_id.split("/")[1]
    try:
        result = publisher.publish(build)
        assert result.repo_id == f"{hubsim.user}/{model}-GPTQ"
        # A GPTQ checkpoint sits at the repo root, where GPTQModel, vLLM and TGI load it from.
        assert {"config.json", "quantize_config.json", "model.safetensors"} <= _files(
            hubsim.api, result.repo_id
        )
    finally:
        hubsim.api.delete_repo(f"{hubsim.user}/{model}-GPTQ", missing_ok=True)


def test_a_release_under_a_new_name_points_the_old_repo_at_it(
    publisher, builds, upstream, hubsim, release_repo
) -> None:
    """A changed naming template makes a new repo: the old one gets `new_version`, and the Hub shows it."""
    build = builds.get(upstream.repo_id, upstream.revisions[0], "int4_awq")
    old, new = release_repo("tiny-int4-old"), release_repo("tiny-int4-new")
    publisher.publish(build, repo_id=old)

    publisher.publish(build, repo_id=new)

    assert ModelCard.load(old, token=hubsim.token).data.new_version == new
    assert ModelCard.load(new, token=hubsim.token).data.get("new_version") is None
    assert f'href="/{new}"' in httpx.get(f"{hubsim.url}/{old}").text


# ------------------------------------------------------------------------------------- pull requests


def test_pr_on_an_existing_repo_describes_the_release(
    publisher, builds, upstream, hubsim, repo_factory
) -> None:
    build = builds.get(upstream.repo_id, upstream.revisions[0], "fp8")
    repo_id = _maintainer_repo(hubsim, repo_factory)
    main_before = _files(hubsim.api, repo_id)

    result = publisher.publish(build, mode="pr", repo_id=repo_id)

    assert (result.status, result.kind) == (ReleaseStatus.OPEN, ReleaseKind.PR)
    pr = hubsim.api.get_discussion_details(repo_id, result.pr_number)
    assert result.url == pr.url and pr.author == hubsim.user and pr.status == "open"
    description = pr.events[0].content
    manifest = _manifest(build)
    ppl = manifest.validation.perplexity
    assert upstream.revisions[0] in description and "FP8 (`fp8`)" in description
    assert "Checkpoint for** | sm89, sm90" in description
    assert f"{ppl.base:.3f}" in description and f"{ppl.quantized:.3f}" in description
    assert "python -m builders run spec.json" in description and manifest.key in description
    assert "may not push to this repository" in description  # why a PR: the bot cannot write here
    assert ReleaseTag.find(description).key == manifest.key
    assert _files(hubsim.api, repo_id, pr.git_reference) >= _artifact_paths(build) | {
        "README.md",
        "manifest.json",
    }
    assert _files(hubsim.api, repo_id) == main_before  # nothing reaches main until a maintainer merges


def test_pr_mode_needs_an_existing_repo(publisher, builds, upstream, release_repo) -> None:
    build = builds.get(upstream.repo_id, upstream.revisions[0], "fp8")
    with pytest.raises(UsageError, match="needs an existing repo"):
        publisher.publish(build, mode="pr", repo_id=release_repo("missing"))


def test_same_release_twice_gives_one_pr_updated_in_place(
    publisher, builds, upstream, hubsim, release_repo
) -> None:
    build = builds.get(upstream.repo_id, upstream.revisions[0], "fp8")
    repo_id = release_repo("tiny-approval")

    first = publisher.publish(build, repo_id=repo_id, approval="approval")
    ref_commits = len(hubsim.api.list_repo_commits(repo_id, revision=f"refs/pr/{first.pr_number}"))
    second = publisher.publish(build, repo_id=repo_id, approval="approval")

    assert first.status is second.status is ReleaseStatus.OPEN
    assert second.pr_number == first.pr_number and len(_bot_prs(hubsim.api, repo_id)) == 1
    assert len(hubsim.api.list_repo_commits(repo_id, revision=f"refs/pr/{first.pr_number}")) == ref_commits
    assert "manifest.json" not in _files(hubsim.api, repo_id)  # approval: main waits for a maintainer


def test_a_closed_pr_is_never_recreated(publisher, hub, builds, upstream, hubsim, repo_factory) -> None:
    build = builds.get(upstream.repo_id, upstream.revisions[0], "fp8")
    repo_id = _maintainer_repo(hubsim, repo_factory)
    opened = publisher.publish(build, mode="pr", repo_id=repo_id)
    hubsim.other_api.change_discussion_status(
        repo_id, opened.pr_number, "closed", comment="Not for us, thanks."
    )

    outcome = ReleaseLookup(hub, hubsim.user).on_pr_closed(repo_id, opened.pr_number)
    again = publisher.publish(build, mode="pr", repo_id=repo_id)

    assert outcome.status is ReleaseStatus.DECLINED and outcome.tag.key == opened.key
    assert again.status is ReleaseStatus.DECLINED and again.pr_number == opened.pr_number
    assert len(_bot_prs(hubsim.api, repo_id)) == 1
    assert hubsim.api.get_discussion_details(repo_id, opened.pr_number).status == "closed"


def test_a_merged_pr_is_the_published_release(publisher, hub, builds, upstream, hubsim, repo_factory) -> None:
    build = builds.get(upstream.repo_id, upstream.revisions[0], "gptq")
    repo_id = _maintainer_repo(hubsim, repo_factory)
    opened = publisher.publish(build, mode="pr", repo_id=repo_id)
    hubsim.other_api.merge_pull_request(repo_id, opened.pr_number)

    outcome = ReleaseLookup(hub, hubsim.user).on_pr_merged(repo_id, opened.pr_number)
    again = publisher.publish(build, mode="pr", repo_id=repo_id)

    assert outcome.status is ReleaseStatus.MERGED
    assert again.status is ReleaseStatus.PUBLISHED and len(_bot_prs(hubsim.api, repo_id)) == 1
    assert hubsim.api.list_repo_refs(repo_id).tags == []  # the bot may not tag a maintainer's repo


def test_a_merged_release_pr_moves_its_revision_tag_to_main(
    publisher, hub, builds, upstream, hubsim, release_repo
) -> None:
    build = builds.get(upstream.repo_id, upstream.revisions[0], "int4_awq")
    repo_id = release_repo("tiny-int4-approval")
    opened = publisher.publish(build, repo_id=repo_id, approval="approval")
    [tag] = hubsim.api.list_repo_refs(repo_id).tags
    assert tag.target_commit == hubsim.api.model_info(repo_id, revision=f"refs/pr/{opened.pr_number}").sha
    hubsim.api.merge_pull_request(repo_id, opened.pr_number)

    ReleaseLookup(hub, hubsim.user).on_pr_merged(repo_id, opened.pr_number)

    [tag] = hubsim.api.list_repo_refs(repo_id).tags
    assert tag.name == f"upstream-{upstream.revisions[0][:12]}"
    assert tag.target_commit == hubsim.api.model_info(repo_id).sha
    assert _artifact_paths(build) <= _files(hubsim.api, repo_id)


def test_reactions_ignore_prs_that_are_not_the_bots_releases(hub, hubsim, repo_factory) -> None:
    repo_id = _maintainer_repo(hubsim, repo_factory)
    theirs = hubsim.other_api.create_pull_request(
        repo_id, "Fix typo", description="<!-- quantbot:release {} -->"
    )
    assert ReleaseLookup(hub, hubsim.user).on_pr_merged(repo_id, theirs.num) is None


def test_a_newer_upstream_revision_supersedes_the_open_pr(
    publisher, hub, builds, upstream, newer_revision, hubsim, repo_factory
) -> None:
    old_build = builds.get(upstream.repo_id, upstream.revisions[0], "fp8")
    new_build = builds.get(upstream.repo_id, newer_revision, "fp8")
    repo_id = _maintainer_repo(hubsim, repo_factory)
    old = publisher.publish(old_build, mode="pr", repo_id=repo_id)

    new = publisher.publish(new_build, mode="pr", repo_id=repo_id)

    assert new.status is ReleaseStatus.OPEN and new.pr_number != old.pr_number
    assert new.superseded == (old.pr_number,)
    closed = hubsim.api.get_discussion_details(repo_id, old.pr_number)
    assert closed.status == "closed"
    assert any(new.url in getattr(e, "content", "") for e in closed.events if e.type == "comment")
    assert (
        ReleaseLookup(hub, hubsim.user).on_pr_closed(repo_id, old.pr_number).status
        is ReleaseStatus.SUPERSEDED
    )
    # The old build, published again, is recognised as superseded: no PR is reopened or recreated.
    assert publisher.publish(old_build, mode="pr", repo_id=repo_id).status is ReleaseStatus.SUPERSEDED
    assert len(_bot_prs(hubsim.api, repo_id)) == 2


def test_a_stale_build_is_not_published_over_a_newer_open_pr(
    publisher, builds, upstream, newer_revision, hubsim, repo_factory
) -> None:
    repo_id = _maintainer_repo(hubsim, repo_factory)
    newer = publisher.publish(builds.get(upstream.repo_id, newer_revision, "fp8"), mode="pr", repo_id=repo_id)

    stale = publisher.publish(
        builds.get(upstream.repo_id, upstream.revisions[0], "fp8"), mode="pr", repo_id=repo_id
    )

    assert stale.status is ReleaseStatus.SUPERSEDED and stale.url == newer.url
    assert len(_bot_prs(hubsim.api, repo_id)) == 1


# ------------------------------------------------------------------------------------------------ faults


def test_rate_limits_and_server_errors_are_retried(publisher, builds, upstream, hubsim, repo_factory) -> None:
    build = builds.get(upstream.repo_id, upstream.revisions[0], "fp8")
    repo_id = _maintainer_repo(hubsim, repo_factory)
    hubsim.fail(r"/discussions$", 429, method="POST", times=2, retry_after=0)  # opening the PR
    hubsim.fail(r"/api/models/[^/]+/[^/]+/revision/", 503, method="GET", times=1)  # reading the upstream
    hubsim.fail(r"/commit/", 502, method="POST", times=1)  # a commit

    result = publisher.publish(build, mode="pr", repo_id=repo_id)

    assert result.status is ReleaseStatus.OPEN
    assert hubsim.server.faults.list() == []  # every injected fault was met, and retried past
    assert len(_bot_prs(hubsim.api, repo_id)) == 1


def test_retries_are_bounded(publisher, builds, upstream, hubsim, repo_factory) -> None:
    build = builds.get(upstream.repo_id, upstream.revisions[0], "fp8")
    repo_id = _maintainer_repo(hubsim, repo_factory)
    fault = hubsim.fail(r"/discussions$", 429, method="GET", times=100, retry_after=0)

    with pytest.raises(HubRateLimited):
        publisher.publish(build, mode="pr", repo_id=repo_id)
    assert 100 - fault.times == MAX_ATTEMPTS  # a few tries, then a clear error; never an endless loop


def test_an_interrupted_upload_resumes_and_announces_nothing_before(
    publisher, builds, upstream, hubsim, release_repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    build = builds.get(upstream.repo_id, upstream.revisions[0], "int4_awq")
    repo_id = release_repo("tiny-interrupted")
    upload = publisher.hub.upload_folder

    def upload_then_fail_next_commit(*args, **kwargs):
        info = upload(*args, **kwargs)
        hubsim.fail(r"/commit/", 507, method="POST", times=1)  # the card's commit will fail: storage full
        return info

    monkeypatch.setattr(publisher.hub, "upload_folder", upload_then_fail_next_commit)
    with pytest.raises(HubUnavailable, match="507"):
        publisher.publish(build, repo_id=repo_id)

    pr = _bot_prs(hubsim.api, repo_id)[0]
    assert pr.status == "draft"  # not announced
    assert _files(hubsim.api, repo_id) == {".gitattributes"}  # nothing on main
    uploaded = _files(hubsim.api, repo_id, pr.git_reference)
    assert _artifact_paths(build) <= uploaded and "README.md" not in uploaded
    commits_before = len(hubsim.api.list_repo_commits(repo_id, revision=pr.git_reference))

    monkeypatch.undo()
    result = publisher.publish(build, repo_id=repo_id)

    assert result.status is ReleaseStatus.PUBLISHED and result.pr_number == pr.num
    # Resumed: the artifacts were not committed again, only the card and manifest were added.
    assert len(hubsim.api.list_repo_commits(repo_id, revision=pr.git_reference)) == commits_before + 1
    assert len(_bot_prs(hubsim.api, repo_id)) == 1


# ------------------------------------------------------------------------------------------ permissions


def test_a_namespace_the_token_cannot_write_is_a_clear_error(publisher, builds, upstream, hubsim) -> None:
    build = builds.get(upstream.repo_id, upstream.revisions[0], "fp8")
    with pytest.raises(NoWriteAccess, match=f"may not create repos in {hubsim.other_user}"):
        publisher.publish(build, repo_id=f"{hubsim.other_user}/not-mine")


def test_no_write_access_falls_back_to_a_pr(publisher, builds, upstream, hubsim, repo_factory) -> None:
    build = builds.get(upstream.repo_id, upstream.revisions[0], "fp8")
    repo_id = _maintainer_repo(hubsim, repo_factory)

    result = publisher.publish(build, mode="repo", repo_id=repo_id)

    assert (result.status, result.kind) == (ReleaseStatus.OPEN, ReleaseKind.PR)
    assert "may not push" in hubsim.api.get_discussion_details(repo_id, result.pr_number).events[0].content


def test_no_write_access_without_pr_fallback_is_an_error(
    settings, builds, upstream, hubsim, repo_factory
) -> None:
    build = builds.get(upstream.repo_id, upstream.revisions[0], "fp8")
    repo_id = _maintainer_repo(hubsim, repo_factory)
    strict = Publisher.from_settings(settings.model_copy(update={"pr_fallback": False}))

    with pytest.raises(NoWriteAccess, match="pr_fallback is off"):
        strict.publish(build, mode="repo", repo_id=repo_id)
    assert _bot_prs(hubsim.api, repo_id) == []


# ------------------------------------------------------------------------------------------------ gating


def test_a_gated_upstream_gives_a_gated_release_with_its_licence(
    settings, builds, upstream, hubsim, release_repo
) -> None:
    """The shared upstream is gated for this test only (the bot is granted access), then reopened."""
    hubsim.other_api.update_repo_settings(upstream.repo_id, gated="manual")
    hubsim.server.grant_access("model", upstream.repo_id, hubsim.user)  # the bot accepted the conditions
    try:
        build = builds.get(upstream.repo_id, upstream.revisions[0], "gptq")
        repo_id = release_repo("gated")
        with pytest.raises(PublishError, match="allow_gated is off"):
            Publisher.from_settings(settings).publish(build, repo_id=repo_id)
        assert not hubsim.api.repo_exists(repo_id)

        allowed = settings.model_copy(update={"allow_gated": True})
        result = Publisher.from_settings(allowed).publish(build, repo_id=repo_id)

        assert result.status is ReleaseStatus.PUBLISHED
        assert hubsim.api.model_info(repo_id).gated == "manual"
        card = ModelCard.load(repo_id, token=hubsim.token)
        assert (card.data.license, card.data.license_name) == ("other", "tiny-llama-license")
        assert card.data.license_link.endswith(f"/{upstream.repo_id}/blob/{upstream.revisions[0]}/LICENSE")
        assert "Access to the base model is gated" in card.text
        # Someone who has not accepted the conditions cannot download the weights from the release either.
        with pytest.raises(GatedRepoError):
            hf_hub_download(repo_id, "model.safetensors", endpoint=hubsim.url, token=hubsim.other_token)
    finally:
        hubsim.other_api.update_repo_settings(upstream.repo_id, gated=False)


def test_an_engine_for_another_sm_is_added_to_the_release(
    publisher, builds, upstream, hubsim, release_repo, copy_build
) -> None:
    """Same key (quantize once), one more engine (compile per SM): the release gains the engine.

    TensorRT-LLM cannot build engines on this machine, so the engine folder here holds stand-in files and the
    manifest records them as the builder would on an H100 worker; the test is about the publisher.
    """
    build = builds.get(upstream.repo_id, upstream.revisions[0], "int4_awq")
    repo_id = release_repo("tiny-engines")
    publisher.publish(build, repo_id=repo_id)
    with_engine = _add_engine(copy_build(build), "sm90_trt-llm-1.2.0rc5_cuda13.0", sm=90)

    result = publisher.publish(with_engine, repo_id=repo_id)

    assert result.status is ReleaseStatus.PUBLISHED and result.pr_number == 2
    files = _files(hubsim.api, repo_id)
    assert "trt-llm/engines/sm90_trt-llm-1.2.0rc5_cuda13.0/rank0.engine" in files
    assert _artifact_paths(build) <= files
    pr = hubsim.api.get_discussion_details(repo_id, 2)
    assert "Adds INT4-AWQ engines for sm90." in pr.events[0].content
    card = ModelCard.load(repo_id, token=hubsim.token).text
    assert "| **SM Architecture** | sm90 |" in card and "engines/sm90_trt-llm-1.2.0rc5_cuda13.0/" in card
    assert publisher.publish(with_engine, repo_id=repo_id).message == "already published on main"


def _add_engine(build: Path, label: str, sm: int) -> Path:
    folder = build / "trt-llm" / "engines" / label
    folder.mkdir(parents=True)
    (folder / "rank0.engine").write_bytes(b"stand-in engine plan " * 64)
    (folder / "config.json").write_text(
        json.dumps({"version": "1.2.0rc5", "build_config": {"max_batch_size": 8}})
    )
    manifest = _manifest(build)
    artifacts = [
        Artifact(
            path=p.relative_to(build).as_posix(), size=p.stat().st_size, sha256=sha256_of(p), kind="engine"
        )
        for p in sorted(folder.iterdir())
    ]
    engine = EngineRecord(
        sm=sm, status="built", path=f"trt-llm/engines/{label}", tensorrt_llm="1.2.0rc5", cuda="13.0"
    )
    manifest.model_copy(
        update={
            "artifacts": [*manifest.artifacts, *artifacts],
            "engines": [engine],
            "device": Device(kind="cuda", name="NVIDIA H100 NVL", sm=sm),
        }
    ).write(build / "manifest.json")
    return build


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_org_namespace_and_a_per_repo_approval_mode_from_the_settings(
    settings, builds, upstream, hubsim
) -> None:
    build = builds.get(upstream.repo_id, upstream.revisions[0], "gptq")
    configured = settings.model_copy(
        update={"namespace": hubsim.org, "approval_repos": {upstream.repo_id: "approval"}}
    )
    expected = f"{hubsim.org}/{upstream.repo_id.split('/')[1]}-GPTQ"
    try:
        result = Publisher.from_settings(configured).publish(build)

        assert result.repo_id == expected
        assert (result.status, result.kind) == (
            ReleaseStatus.OPEN,
            ReleaseKind.PR,
        )  # approval: a maintainer merges
        assert "manifest.json" not in _files(hubsim.api, expected)
    finally:
        hubsim.api.delete_repo(expected, missing_ok=True)


def test_an_outdated_card_is_updated_but_a_maintainers_edit_is_kept(
    settings, builds, upstream, hubsim, release_repo
) -> None:
    build = builds.get(upstream.repo_id, upstream.revisions[0], "gptq")
    repo_id = release_repo("tiny-card-fix")
    Publisher.from_settings(settings).publish(build, repo_id=repo_id)
    renamed = settings.model_copy(
        update={"publisher_name": "Acme Quant", "publisher_url": "https://acme.test"}
    )

    fixed = Publisher.from_settings(renamed).publish(build, repo_id=repo_id)

    assert fixed.status is ReleaseStatus.PUBLISHED and fixed.pr_number == 2
    assert (
        "Updates the card of the GPTQ release"
        in hubsim.api.get_discussion_details(repo_id, 2).events[0].content
    )
    assert (
        "*Quantized by [Acme Quant](https://acme.test)*" in ModelCard.load(repo_id, token=hubsim.token).text
    )
    readme = Path(hf_hub_download(repo_id, "README.md", endpoint=hubsim.url, token=hubsim.token)).read_text()
    hubsim.api.upload_file(
        path_or_fileobj=(readme + "\nA note from the maintainers.\n").encode(),
        path_in_repo="README.md",
        repo_id=repo_id,
    )
    again = settings.model_copy(update={"publisher_name": "Someone Else"})

    kept = Publisher.from_settings(again).publish(build, repo_id=repo_id)

    assert kept.message == "already published on main"
    assert "A note from the maintainers." in ModelCard.load(repo_id, token=hubsim.token).text
