"""One retry budget per Hub request: the client's where huggingface_hub retries the request itself (the
preupload and LFS requests of an upload), the bot's (`bot.hub.MAX_ATTEMPTS`) elsewhere; never both nested.
And the card is checked with the Hub's `validate-yaml` in the Hub's words. Against hubsim over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import CardRefused, HubRateLimited, transient
from bot.hub import MAX_ATTEMPTS

CLIENT_TRIES = 6  # huggingface_hub's http_backoff: the request and 5 retries
# `hub` (the bot's `Hub` on hubsim) comes from conftest.py.


def test_an_upload_in_a_storm_spends_the_clients_budget_only(
    hub, hubsim, repo_factory, tmp_path: Path
) -> None:
    repo_id = repo_factory("storm")
    (tmp_path / "weights.safetensors").write_bytes(b"\1" * 4096)
    fault = hubsim.fail(r"/preupload/", 429, method="POST", times=100, retry_after=0)
    with pytest.raises(HubRateLimited) as failed:
        hub.upload_folder(repo_id, tmp_path, commit_message="weights")
    assert 100 - fault.times == CLIENT_TRIES  # not CLIENT_TRIES * MAX_ATTEMPTS
    assert transient(failed.value)  # the publish waits and is tried again later (bot.retries)


def test_a_plain_request_gets_the_bots_budget(hub, hubsim, repo_factory) -> None:
    repo_id = repo_factory("plain")
    fault = hubsim.fail(r"/api/models/", 429, method="GET", times=100, retry_after=0)
    with pytest.raises(HubRateLimited):
        hub.model_info(repo_id)
    assert 100 - fault.times == MAX_ATTEMPTS


def test_validate_card_passes_the_hubs_refusal_on_in_its_words(hub, hubsim) -> None:
    hub.validate_card("---\nlicense: apache-2.0\n---\n# A card\n")
    with pytest.raises(CardRefused) as refused:
        hub.validate_card("---\nlicense: not-a-licence\nbase_model_relation: copied\n---\n# A card\n")
    messages = refused.value.hub_messages
    assert any(m.startswith('"license" must be one of [apache-2.0, mit,') for m in messages)
    assert any('"base_model_relation" must be one of' in m for m in messages)
    assert not transient(refused.value)  # retrying cannot help: the job fails with the Hub's reason
