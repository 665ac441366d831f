"""A release repo that is new to its upstream's releases (a renamed upstream, a changed naming template)
gives the older release repos of the same upstream and format `new_version`, whichever path published it:
the one-machine publish or the staged (fanned-out) one, finalised by the bot."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from huggingface_hub import ModelCard

from bot.hub import Hub
from bot.publishing.publisher import Publisher
from bot.publishing.staged import StagedPublisher
from builders.spec import MANIFEST_NAME, Manifest, StagedCheckpoint
from builders.tiny import push_upstream
from state import Store

pytestmark = pytest.mark.slow


def _shows_new_version(hubsim, old: str, new: str) -> None:
    """The card's metadata, the Hub's API and the old repo's model page all point at the new repo."""
    assert ModelCard.load(old, token=hubsim.token).data.new_version == new
    assert (hubsim.api.model_info(old).card_data or {}).get("new_version") == new
    assert f'href="/{new}"' in httpx.get(f"{hubsim.url}/{old}").text
    assert ModelCard.load(new, token=hubsim.token).data.get("new_version") is None


def test_a_renamed_upstream_s_new_release_repo_is_the_old_one_s_new_version(
    settings, builds, tiny_model: Path, hubsim, store: Store, payloads
) -> None:
    """The upstream is renamed after its first release: its next release goes to the repo named after the new
    name, and the old release repo, whose card still names the old name as its base model, points at it."""
    old = f"{hubsim.other_user}/tiny-renamed-{uuid.uuid4().hex[:8]}"
    new = f"{old}-v2"
    sha = push_upstream(tiny_model, old, endpoint=hubsim.url, token=hubsim.other_token)
    publisher = Publisher(Hub(endpoint=hubsim.url, token=hubsim.token), settings, store.events.former_names)
    made: list[str] = []
    try:
        first = publisher.publish(builds.get(old, sha, "gptq"))
        made.append(first.repo_id)
        hubsim.other_api.move_repo(old, new)
        moved = payloads["repo_moved"]  # the Hub's webhook, as the bot stores it before handling it
        moved["repo"]["name"], moved["movedTo"]["name"] = old, new
        store.events.record(
            delivery_id="move-1", scope="repo", action="move", payload=moved, dedup_key="move-1", repo=old
        )

        second = publisher.publish(builds.get(new, sha, "gptq"))
        made.append(second.repo_id)

        assert second.repo_id != first.repo_id and second.repo_id.endswith(new.split("/")[1] + "-GPTQ")
        _shows_new_version(hubsim, first.repo_id, second.repo_id)
    finally:
        for repo_id in made:
            hubsim.api.delete_repo(repo_id, missing_ok=True)
        hubsim.other_api.delete_repo(new, missing_ok=True)


def test_a_staged_release_in_a_new_repo_is_the_old_one_s_new_version(
    publisher, settings, builds, upstream, hubsim, release_repo
) -> None:
    """A fanned-out release whose repo is new (the naming template changed): once the bot finalises it, the
    repo the one-machine publish made before points at it."""
    build = builds.get(upstream.repo_id, upstream.revisions[0], "gptq")
    old, new = release_repo("tiny-gptq-old-name"), release_repo("tiny-gptq-new-name")
    publisher.publish(build, repo_id=old)
    staged = StagedPublisher.from_settings(settings)

    draft = staged.stage(build, new)
    assert isinstance(draft, StagedCheckpoint), draft
    assert ModelCard.load(old, token=hubsim.token).data.get("new_version") is None  # only a draft so far
    result = staged.finalise(Manifest.read(build / MANIFEST_NAME), draft, "auto")

    assert result.repo_id == new
    _shows_new_version(hubsim, old, new)
