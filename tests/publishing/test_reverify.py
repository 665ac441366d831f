"""Published releases verified again: on schedule and when the runtime table changes, downloaded by id and
checked as after upload and by the publisher's invariance gate; a release that no longer holds gets one
discussion saying what failed."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd, hf_hub_download

from bot.hub import Hub
from bot.publishing.reverify import GATE, TITLE, Reverifier, table_fingerprint
from state import ReleaseKind, ReleaseStatus, Store
from state.models import utcnow

pytestmark = pytest.mark.slow


def test_a_release_that_no_longer_holds_is_reported_once(
    publisher, settings, builds, upstream, hubsim, release_repo, store: Store
) -> None:
    build = builds.get(upstream.repo_id, upstream.revisions[0], "gptq")
    repo_id = release_repo("tiny-gptq-kept")
    published = publisher.publish(build, repo_id=repo_id)
    live = ReleaseStatus.PUBLISHED
    store.releases.record(
        build_key=published.key, repo_id=repo_id, kind=ReleaseKind.REPO, url=published.url, status=live
    )
    quiet = settings.model_copy(update={"runtime_envs": False, "reverify_days": 30})
    hub = Hub(endpoint=hubsim.url, token=hubsim.token)
    fetched: list[str] = []  # what the gate downloads (the verification worker downloads the release itself)
    snapshot = hub.snapshot

    def traced(repo: str, revision: str, files: list[str], folder: Path) -> Path:
        fetched.extend(files)
        return snapshot(repo, revision, files, folder)

    hub.snapshot = traced  # type: ignore[method-assign]
    reverifier = Reverifier(quiet, hub, store, hubsim.user)

    assert reverifier.sweep() == 1
    assert "config.json" in fetched and not [f for f in fetched if f.endswith(".safetensors")]
    [release] = store.releases.find(repo_id=repo_id)
    assert (release.verified_ok, release.verified_table) == (True, table_fingerprint())
    assert not list(
        hubsim.api.get_repo_discussions(repo_id, discussion_type="discussion")
    )  # it holds: nothing to say
    assert reverifier.sweep() == 0  # verified lately, under the same table
    store.releases.verified(release.id, at=utcnow(), table="an older table", ok=True)
    assert reverifier.sweep() == 1  # the runtime table changed: checked again at once

    weights = next(f for f in hubsim.api.list_repo_files(repo_id) if f.endswith(".safetensors"))
    hubsim.api.upload_file(path_or_fileobj=b"not the weights", path_in_repo=weights, repo_id=repo_id)
    next_month = utcnow() + timedelta(days=31)
    assert reverifier.sweep(next_month) == 1
    [reported] = hubsim.api.get_repo_discussions(repo_id, discussion_type="discussion")
    assert (reported.title, reported.author) == (TITLE, hubsim.user)
    text = hubsim.api.get_discussion_details(repo_id, reported.num).events[0].content
    assert weights in text and "no longer holds" in text
    assert f"**{GATE}**: {weights} is not a safetensors file" in text  # its header, read on the Hub
    assert store.releases.find(repo_id=repo_id)[0].verified_ok is False

    assert reverifier.sweep(next_month + timedelta(days=31)) == 1  # checked again, not reported again
    assert len(list(hubsim.api.get_repo_discussions(repo_id, discussion_type="discussion"))) == 1


def test_metadata_edited_on_the_hub_fails_the_invariance_gate_once(
    publisher, settings, builds, upstream, hubsim, release_repo, store: Store
) -> None:
    """The release's chat template and config.json edited on the Hub after publishing: the gate the publisher
    ran before upload fails on the release as it is now, and its repo gets one discussion naming both files;
    a release left alone gets none."""
    build = builds.get(upstream.repo_id, upstream.revisions[0], "gptq")
    edited, healthy = release_repo("tiny-gptq-edited"), release_repo("tiny-gptq-healthy")
    for repo_id in (edited, healthy):
        published = publisher.publish(build, repo_id=repo_id)
        store.releases.record(
            build_key=published.key,
            repo_id=repo_id,
            kind=ReleaseKind.REPO,
            url=published.url,
            status=ReleaseStatus.PUBLISHED,
        )

    def edited_json(name: str, **changes: object) -> CommitOperationAdd:
        path = hf_hub_download(edited, name, endpoint=hubsim.url, token=hubsim.token)
        data = json.loads(Path(path).read_text(encoding="utf-8")) | changes
        return CommitOperationAdd(name, json.dumps(data, indent=2).encode())

    hubsim.api.create_commit(
        edited,
        [
            edited_json("tokenizer_config.json", chat_template="{{ messages[0]['content'] }}"),
            edited_json("config.json", rope_theta=10000.0),
        ],
        commit_message="Simplify the chat template",
    )
    quiet = settings.model_copy(update={"runtime_envs": False, "reverify_days": 30})
    reverifier = Reverifier(quiet, Hub(endpoint=hubsim.url, token=hubsim.token), store, hubsim.user)

    assert reverifier.sweep() == 2
    assert not list(hubsim.api.get_repo_discussions(healthy, discussion_type="discussion"))
    assert store.releases.find(repo_id=healthy)[0].verified_ok is True
    [reported] = hubsim.api.get_repo_discussions(edited, discussion_type="discussion")
    assert (reported.title, reported.author) == (TITLE, hubsim.user)
    text = hubsim.api.get_discussion_details(edited, reported.num).events[0].content
    assert f"**{GATE}**: tokenizer_config.json is not the upstream's (keys chat_template)" in text
    assert f"**{GATE}**: config.json: rope_theta is 10000.0 (upstream: 500000.0)" in text
    assert store.releases.find(repo_id=edited)[0].verified_ok is False

    assert reverifier.sweep(utcnow() + timedelta(days=31)) == 2  # both checked again, nothing said again
    assert len(list(hubsim.api.get_repo_discussions(edited, discussion_type="discussion"))) == 1
    assert not list(hubsim.api.get_repo_discussions(healthy, discussion_type="discussion"))
