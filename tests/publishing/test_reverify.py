"""Published releases verified again: on schedule and when the runtime table changes, downloaded by id and
checked as after upload; a release that no longer holds gets one discussion saying what failed."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.hub import Hub
from bot.publishing.reverify import TITLE, Reverifier, table_fingerprint
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
    reverifier = Reverifier(quiet, Hub(endpoint=hubsim.url, token=hubsim.token), store, hubsim.user)

    assert reverifier.sweep() == 1
    [release] = store.releases.find(repo_id=repo_id)
    assert (release.verified_ok, release.verified_table) == (True, table_fingerprint())
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
    assert store.releases.find(repo_id=repo_id)[0].verified_ok is False

    assert reverifier.sweep(next_month + timedelta(days=31)) == 1  # checked again, not reported again
    assert len(list(hubsim.api.get_repo_discussions(repo_id, discussion_type="discussion"))) == 1
