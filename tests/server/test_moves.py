"""A repo renamed on the Hub: the `repo` `move` event moves the bot's watches, jobs, releases and commands to
the new name (one build key per revision, whatever the name), and the status page says so."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bot.hub import Hub
from bot.hubsim import HubService
from bot.intake.dispatcher import Dispatcher
from builders.spec import BuildSpec
from handlers.context import Options
from state import ReleaseKind, Store, WatchKind


def _spec(repo: str, tmp_path) -> BuildSpec:
    return BuildSpec(
        repo_id=repo, revision="a" * 40, format="gptq", work_dir=tmp_path / "w", output_dir=tmp_path / "o",
        toolchain={"gptqmodel": "1.0", "transformers": "4.0", "torch": "2.0"},
    )  # fmt: skip


def _dispatcher(store: Store, hubsim) -> Dispatcher:
    hub = Hub(endpoint=hubsim.url, token=hubsim.token)
    options = Options(bot_name="quantbot", namespace="quantbot-releases")
    return Dispatcher(store, hub=hub, options=options, planner=None)  # type: ignore[arg-type]


def _moved(payloads: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    payload = payloads["repo_moved"]
    payload["repo"]["name"], payload["movedTo"]["name"] = old, new
    return payload


def test_a_move_event_moves_watches_jobs_releases_and_commands(bot, payloads, hubsim, tmp_path) -> None:
    old, new = "alice/Llama-Tiny", "alice-org/llama-tiny-v2"
    store = bot.store
    store.watches.add(WatchKind.REPO, old.lower(), formats=["gptq"])
    spec = _spec(old, tmp_path)
    job, _ = store.jobs.enqueue(spec.key(), spec.model_dump(mode="json"), repo=old)
    pr_url = f"{hubsim.url}/{old}/discussions/3"
    store.releases.record(build_key=job.build_key, repo_id=old, kind=ReleaseKind.PR, url=pr_url, pr_number=3)
    command, _ = store.commands.record(repo=old, discussion_num=2, comment_id="c1", author="bob", text="/q")
    store.commands.update(command.id, build_keys=[job.build_key])

    response = bot.deliver(_moved(payloads, old, new))
    assert response.status_code == 202
    assert _dispatcher(store, hubsim).drain() == 1

    assert bot.stored(response).outcome == "handled"
    [watch] = store.watches.list()
    assert (watch.target, watch.formats) == (new, ["gptq"])
    [moved] = store.jobs.list()
    assert (moved.id, moved.repo, moved.spec["repo_id"]) == (job.id, new, new)
    assert moved.build_key == _spec(new, tmp_path).key() != job.build_key  # what a delivery under new makes
    [release] = store.releases.find(repo_id=new)
    assert (release.build_key, release.url) == (moved.build_key, f"{hubsim.url}/{new}/discussions/3")
    [answered] = store.commands.in_discussion(new, 2)
    assert answered.build_keys == [moved.build_key]
    page = re.sub(r"<[^>]+>", "", bot.client.get("/").text)
    assert f"{old} was renamed to {new}" in page


def test_a_move_of_a_repo_the_bot_knows_nothing_of_is_ignored(bot, payloads, hubsim) -> None:
    response = bot.deliver(_moved(payloads, "bob/unknown", "bob/unknown-2"))
    _dispatcher(bot.store, hubsim).drain()
    assert bot.stored(response).outcome == "ignored"
    assert "renamed" not in bot.client.get("/").text


@pytest.mark.skipif(not hasattr(HubService, "move_repo"), reason="this hubsim cannot rename repos yet")
def test_a_rename_on_hubsim_moves_the_watch(bot, hubsim, repo_factory) -> None:
    old = repo_factory("to-rename")
    new = f"{hubsim.org}/{old.split('/')[1]}-renamed"
    bot.store.watches.add(WatchKind.REPO, old)
    hook = hubsim.api.create_webhook(
        url=f"{bot.url}/webhooks/hub", watched=[{"type": "user", "name": hubsim.user}], secret=bot.secret
    )
    try:
        hubsim.api.move_repo(old, new)
        hubsim.wait_for_delivery(lambda d: d.payload["event"]["action"] == "move" and d.status == 202)
    finally:
        hubsim.api.delete_webhook(hook.id)
    bot.flush()
    assert _dispatcher(bot.store, hubsim).drain() >= 1
    assert [w.target for w in bot.store.watches.list()] == [new]
    hubsim.api.delete_repo(new, missing_ok=True)
