"""A card whose metadata the Hub would refuse is found before anything is uploaded: the publisher asks the
Hub's `validate-yaml` first, and the job fails with the Hub's words, for good (retrying cannot fix it)."""

from __future__ import annotations

import dataclasses
import re

import pytest

from bot.errors import CardRefused
from bot.publishing import publisher as publisher_module
from bot.publishing.publish_step import PublishStep
from bot.retries import Retries
from bot.settings import load_settings
from state import JobStatus

pytestmark = pytest.mark.slow


@pytest.fixture
def bad_licence(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cards as rendered, but with a licence id the Hub does not know (what a wrong upstream value gives)."""
    prepare = publisher_module.prepare

    def prepare_with_a_bad_licence(*args, **kwargs):
        release = prepare(*args, **kwargs)
        card = re.sub(r"(?m)^license: .*$", "license: tiny-llama-licence-v1", release.card, count=1)
        return dataclasses.replace(release, card=card)

    monkeypatch.setattr(publisher_module, "prepare", prepare_with_a_bad_licence)


def test_a_refused_card_fails_the_job_before_any_upload_with_the_hubs_message(
    publisher, builds, upstream, hubsim, release_repo, store, bad_licence
) -> None:
    build = builds.get(upstream.repo_id, upstream.revisions[0], "int4_awq")
    repo_id = release_repo("refused-card")
    with pytest.raises(CardRefused, match=r'"license" must be one of \[apache-2.0, mit'):
        publisher.publish(build, repo_id=repo_id)
    assert not hubsim.api.repo_exists(repo_id)  # no repo, no PR, no weights: nothing went up

    job, _ = store.jobs.enqueue("c" * 64, {"output_dir": str(build)}, repo=upstream.repo_id)
    store.lifecycle.claim_build("w", 60)
    store.lifecycle.finish_build(job.id, "w", {"status": "succeeded"})
    claimed = store.lifecycle.claim_publish("publisher", 60)
    retries = Retries(load_settings(None), store)
    PublishStep(store, publisher, owner="publisher", lease_s=60, retries=retries).publish(claimed)
    failed = store.jobs.get(job.id)
    assert failed.status is JobStatus.FAILED and failed.retry_at is None  # permanent: not retried
    assert failed.error.startswith('publish failed: the Hub refused the card\'s metadata: "license" must be')
