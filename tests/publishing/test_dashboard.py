"""The dashboard discussion on a watched upstream: one per upstream, opened once, edited in place when (and
only when) what it says changes, as hubsim's discussion page then shows it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import httpx

from bot.hub import Hub
from bot.publishing.dashboard import TITLE, UpstreamDashboards
from bot.publishing.metadata_update import MetadataUpdates
from handlers.inputs import Eligibility
from state import ReleaseKind, ReleaseStatus, Store, WatchKind
from state.models import utcnow


def _job(store: Store, upstream: str, fmt: str, revision: str, **enqueue) -> int:
    spec = {"format": fmt, "revision": revision, "target_sms": [90]}
    job, _ = store.jobs.enqueue(f"{fmt}-{revision}", spec, repo=upstream, **enqueue)
    return job.id


def test_one_dashboard_per_upstream_edited_in_place(
    hubsim, store: Store, repo_factory: Callable[..., str]
) -> None:
    upstream = repo_factory("upstream", token=hubsim.other_token)
    head = hubsim.other_api.upload_file(
        path_or_fileobj=b"{}", path_in_repo="config.json", repo_id=upstream
    ).oid
    store.watches.add(WatchKind.REPO, upstream, dashboard=True)
    store.watches.add(WatchKind.REPO, repo_factory("quiet", token=hubsim.other_token))  # no dashboard asked
    eligible = {"fp8": [89, 90], "int4_awq": [90], "gptq": [89, 90]}
    refused = {"nvfp4": ["sm89: NVFP4 needs sm100", "sm90: NVFP4 needs sm100"]}
    plan = Eligibility(upstream, head, "strict", None, (89, 90), eligible, refused)
    gptq = _job(store, upstream, "gptq", head)
    store.lifecycle.claim_build("worker", 60)
    store.lifecycle.finish_build(gptq, "worker", {"status": "succeeded"})
    store.lifecycle.claim_publish("worker", 60)
    store.lifecycle.finish_publish(gptq, "worker", "published on main")
    release = repo_factory("released-GPTQ")
    url = f"{hubsim.url}/{release}"
    store.releases.record(
        build_key=f"gptq-{head}",
        repo_id=release,
        kind=ReleaseKind.REPO,
        url=url,
        status=ReleaseStatus.PUBLISHED,
    )
    failed = _job(store, upstream, "int4_awq", head)
    store.lifecycle.claim_build("worker", 60)
    store.lifecycle.fail_build(failed, "worker", "calibration ran out of memory", None)
    waiting = _job(store, upstream, "fp8", head, not_before=utcnow() + timedelta(minutes=30))
    hub = Hub(endpoint=hubsim.url, token=hubsim.token)
    upkeep = MetadataUpdates(hub, store, hubsim.user, hubsim.url)
    dashboards = UpstreamDashboards(hub, store, lambda repo, sha: plan, upkeep, hubsim.url)

    assert dashboards.refresh() == 1
    [discussion] = hubsim.api.get_repo_discussions(upstream)
    assert (discussion.title, discussion.author, discussion.is_pull_request) == (TITLE, hubsim.user, False)
    text = hubsim.api.get_discussion_details(upstream, discussion.num).events[0].content
    rows = {line.split(" | ")[0].strip("| *"): line for line in text.splitlines() if line.startswith("| **")}
    assert " | published | " in rows["GPTQ"] and f"({hubsim.url}/{release})" in rows["GPTQ"]
    assert " | waiting | " in rows["FP8"] and "`/quantize fp8 --now`" in rows["FP8"]
    assert " | failed | " in rows["INT4-AWQ"] and "out of memory" in rows["INT4-AWQ"]
    assert " | refused | " in rows["NVFP4"] and "NVFP4 needs sm100" in rows["NVFP4"]
    assert not rows.keys() - {"GPTQ", "FP8", "INT4-AWQ", "NVFP4", "INT8-SQ", "W4A8-AWQ"}
    assert dashboards.refresh() == 0  # nothing moved: the Hub is not written

    store.lifecycle.start_now(waiting)
    store.lifecycle.claim_build("worker", 60)
    assert dashboards.refresh() == 1

    [same] = hubsim.api.get_repo_discussions(upstream)  # never reposted
    details = hubsim.api.get_discussion_details(upstream, same.num)
    assert same.num == discussion.num and [e.type for e in details.events] == ["comment"]
    assert " | running | " in details.events[0].content
    page = httpx.get(f"{hubsim.url}/{upstream}/discussions/{same.num}").text
    shown, _, earlier = page.partition("Earlier versions (1)")  # the Hub keeps an edited comment's history
    assert "running" in shown and "waiting" not in shown and "waiting" in earlier
    assert "edited 1 time" in shown
