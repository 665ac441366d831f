"""The status page (`GET /`) and its JSON (`GET /api/status`): what a person watching the bot needs to see."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.retries import Cause, Retries
from bot.settings import load_settings
from state import ApprovalMode, CommandStatus, JobStatus, ReleaseKind, TaskState, WatchKind
from state.models import utcnow

HUB = "http://hub.test:8765"
SHA = "575db8b7a51b6f85eb06eee540738584589f131c"


def _spec(fmt: str, repo: str = "org/model") -> dict[str, Any]:
    return {"repo_id": repo, "revision": SHA, "format": fmt}


def _busy_bot(make_server: Any) -> Any:
    """A running GPTQ build at 42%, a queued FP8 one, a failed one, a PR release, a refusal and a watch."""
    bot = make_server(hf_endpoint=HUB)
    store = bot.store
    store.watches.add(WatchKind.REPO, "org/model", formats=["gptq"], approval=ApprovalMode.AUTO)
    running, _ = store.jobs.enqueue("k1", _spec("gptq"), repo="org/model", label="org/model gptq")
    store.jobs.enqueue("k2", _spec("fp8"), repo="org/model", label="org/model fp8")
    store.jobs.claim("host:12:cpu", 60)
    store.jobs.heartbeat(running.id, "host:12:cpu", 60, progress=0.42, message="quantize: batch 3/8")

    failed, _ = store.jobs.enqueue("k3", _spec("int4_awq", "org/other"), repo="org/other")
    store.jobs.transition(
        failed.id, {JobStatus.QUEUED}, JobStatus.FAILED, error="fetch: no safetensors weights",
        manifest={"errors": [{"stage": "fetch", "kind": "no_safetensors", "message": "", "bad_input": True}]},
    )  # fmt: skip
    published, _ = store.jobs.enqueue("k0", _spec("gptq", "org/old"), repo="org/old")
    steps = [JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.BUILT, JobStatus.PUBLISHING, JobStatus.PUBLISHED]
    for source, target in zip(steps, steps[1:], strict=False):
        store.jobs.transition(published.id, {source}, target)
    store.releases.record(
        build_key="k0", repo_id="quantbot/old-GPTQ", kind=ReleaseKind.PR, pr_number=3, job_id=published.id,
        url=f"{HUB}/quantbot/old-GPTQ/discussions/3",
    )  # fmt: skip
    command, _ = store.commands.record(
        repo="org/model", discussion_num=4, comment_id="c1", author="mallory", text="/quantize gptq"
    )
    store.commands.update(command.id, status=CommandStatus.REFUSED, reason="mallory may not build here")
    return bot


def test_page_shows_running_build_with_stage_progress_elapsed_worker_and_timeline(make_server) -> None:
    page = _busy_bot(make_server).client.get("/").text

    row = re.search(r'<tr class="job" id="job-1">(.*?)</tr>', page, re.S)
    assert row is not None, "the running build has its own row"
    cells = row.group(1)
    assert f'<a href="{HUB}/org/model">org/model</a>' in cells and "<strong>gptq</strong>" in cells
    assert f'<a href="{HUB}/org/model/tree/{SHA}">{SHA[:12]}</a>' in cells
    assert "<strong>quantize</strong>" in cells and "batch 3/8" in cells
    assert '<progress max="1" value="0.4200">' in cells and "42%" in cells
    assert "host:12:cpu" in cells and re.search(r"<td>\d+ s</td>", cells)  # worker, elapsed
    assert re.search(r"queued</span> [\d:]{8}.*running</span> [\d:]{8} <span class=\"muted\">\+\d+ s", cells)


def test_page_shows_queue_releases_failures_refusals_and_watches(make_server) -> None:
    page = _busy_bot(make_server).client.get("/").text

    assert "<h2>Queue (1)</h2>" in page and "<strong>fp8</strong>" in page
    release = re.search(r"<h2>Recent releases</h2>(.*?)</table>", page, re.S).group(1)  # type: ignore[union-attr]
    assert f'<a href="{HUB}/org/old">org/old</a>' in release and "<td>gptq</td>" in release
    assert f'<a href="{HUB}/quantbot/old-GPTQ/discussions/3">PR #3</a>' in release and "open" in release
    failures = re.search(r"<h2>Failures</h2>(.*?)</table>", page, re.S).group(1)  # type: ignore[union-attr]
    assert "fetch: no safetensors weights" in failures and "push a new revision" in failures
    refusals = re.search(r"<h2>Refusals</h2>(.*?)</table>", page, re.S).group(1)  # type: ignore[union-attr]
    assert f'<a href="{HUB}/org/model/discussions/4">org/model#4</a>' in refusals
    assert "mallory may not build here" in refusals and "allowlist" in refusals
    watches = re.search(r"<h2>Watches</h2>(.*?)</table>", page, re.S).group(1)  # type: ignore[union-attr]
    assert "org/model" in watches and "gptq" in watches and "auto" in watches


def test_api_status_is_the_same_snapshot_as_json(make_server) -> None:
    bot = _busy_bot(make_server)
    status = bot.client.get("/api/status").json()

    (build,) = status["building"]
    assert (build["upstream"], build["format"], build["revision"]) == ("org/model", "gptq", SHA)
    assert (build["stage"], build["message"], build["progress"], build["worker"]) == (
        "quantize", "batch 3/8", 0.42, "host:12:cpu"
    )  # fmt: skip
    assert [e["status"] for e in build["timeline"]] == ["queued", "running"]
    assert status["queue"]["total"] == 1 and status["counts"]["failed"] == 1
    (release,) = status["releases"]
    assert (release["upstream"], release["format"], release["revision"], release["repo"], release["pr"]) == (
        "org/old", "gptq", SHA, "quantbot/old-GPTQ", 3
    )  # fmt: skip
    assert status["failures"][0]["todo"] and status["refusals"][0]["todo"]


def test_page_names_the_worker_or_job_that_ran_each_task(make_server) -> None:
    """A fanned-out build's tasks (a quantize, an engine per SM) each say where they ran: a Celery worker's
    name and queue, or a Hugging Face Job's page and flavour; a task not started yet says so."""
    bot = make_server(hf_endpoint=HUB)
    store = bot.store
    celery, _ = store.jobs.enqueue("c1", _spec("gptq"), repo="org/model")
    store.tasks.add(celery.id, "t-q", kind="quantize", queue="quantize")
    store.tasks.update("t-q", state=TaskState.SUCCEEDED, worker="celery@gpu-a")
    store.tasks.add(celery.id, "t-90", kind="engine", queue="sm90", sm=90)
    store.tasks.update("t-90", state=TaskState.STARTED, worker="celery@gpu-b")
    store.tasks.add(celery.id, "t-89", kind="engine", queue="sm89", sm=89)
    jobs, _ = store.jobs.enqueue("j1", _spec("fp8"), repo="org/model")
    store.tasks.add(jobs.id, "job-1", kind="quantize", queue="l4x1")
    store.tasks.update("job-1", state=TaskState.STARTED, worker=f"{HUB}/jobs/quantbot-jobs/job-1")

    page = bot.client.get("/").text
    recent = re.search(r"<h2>Recent jobs</h2>(.*?)</table>", page, re.S).group(1)  # type: ignore[union-attr]
    assert "<th>ran on</th>" in recent
    assert "quantize: celery@gpu-a" in recent and "quantize · succeeded" in recent
    assert "engine sm90: celery@gpu-b" in recent and "sm90 · started" in recent
    assert 'engine sm89: <span class="muted">not started</span>' in recent
    assert f'quantize: <a href="{HUB}/jobs/quantbot-jobs/job-1">' in recent and "l4x1 · started" in recent
    (shown,) = [j for j in bot.client.get("/api/status").json()["recent"] if j["id"] == celery.id]
    assert [(t["what"], t["worker"]) for t in shown["tasks"]] == [
        ("quantize", "celery@gpu-a"), ("engine sm90", "celery@gpu-b"), ("engine sm89", None)
    ]  # fmt: skip


def test_page_refreshes_in_place_with_javascript_and_by_reload_without(bot) -> None:
    page = bot.client.get("/").text
    assert '<noscript><meta http-equiv="refresh"' in page  # no JavaScript: the browser reloads
    assert "fetch(location.pathname" in page and 'querySelector("main")' in page  # JavaScript: in place


def test_page_is_bounded_with_many_jobs(bot) -> None:
    for n in range(300):
        bot.store.jobs.enqueue(f"k{n}", _spec("fp8", f"org/m{n}"), repo=f"org/m{n}")
    page = bot.client.get("/").text
    status = bot.client.get("/api/status").json()
    assert status["queue"]["total"] == 300 and len(status["queue"]["jobs"]) == 20
    assert "<h2>Queue (300)</h2>" in page and "and 280 more." in page


def test_nothing_hostile_becomes_markup_or_a_link(bot) -> None:
    bot.store.releases.record(
        build_key="kx", repo_id="quantbot/evil", kind=ReleaseKind.REPO, url="javascript:alert(1)"
    )
    command, _ = bot.store.commands.record(
        repo="org/model", discussion_num=4, comment_id="c1", author="m", text="/quantize <script>x</script>"
    )
    bot.store.commands.update(command.id, status=CommandStatus.REFUSED, reason="rate limited (11 in 3600s)")
    page = bot.client.get("/").text
    assert "javascript:" not in page and "quantbot/evil" in page
    assert "<script>x" not in page and "&lt;script&gt;x" in page


def test_page_when_nothing_happened(bot) -> None:
    page = bot.client.get("/").text
    for empty in (
        "Nothing is being built.",
        "The queue is empty.",
        "No releases yet.",
        "Nothing was refused.",
    ):
        assert empty in page
    assert "quantbot watch add" in page


def test_a_step_the_hub_failed_shows_when_it_tries_again_and_a_final_failure_says_retry(make_server) -> None:
    bot = make_server(hf_endpoint=HUB)
    store = bot.store
    settings = load_settings(None, transient_deadline_h=1.0)
    start = datetime(2020, 1, 2, 3, 0, tzinfo=UTC)
    waiting, _ = store.jobs.enqueue("w1", _spec("gptq"), repo="org/model")
    given_up, _ = store.jobs.enqueue("w2", _spec("fp8"), repo="org/model")
    reason = "fetch: could not download: 503"
    claimed = store.lifecycle.claim_build("host:1:cpu", 60)
    assert claimed is not None and claimed.id == waiting.id
    Retries(settings, store).build_failed(claimed, "host:1:cpu", reason, None, Cause.HUB)  # waits from now
    for hours in (0, 2):  # the other fails, and fails again past the deadline
        claimed = store.lifecycle.claim_build("host:1:cpu", 60)
        assert claimed is not None and claimed.id == given_up.id
        retries = Retries(settings, store, clock=itertools.repeat(start + timedelta(hours=hours)).__next__)
        retries.build_failed(claimed, "host:1:cpu", reason, None, Cause.HUB)
    page = bot.client.get("/").text
    queue = re.search(r"<h2>Queue \(1\)</h2>(.*?)</table>", page, re.S).group(1)  # type: ignore[union-attr]
    assert "the Hub failed it (fetch: could not download: 503): retrying at" in queue and "attempt 2" in queue
    failures = re.search(r"<h2>Failures</h2>(.*?)</table>", page, re.S).group(1)  # type: ignore[union-attr]
    assert "the Hub kept failing since 2020-01-02 03:00 UTC, 2 attempts" in failures and "/retry" in failures
    status = bot.client.get("/api/status").json()
    assert status["queue"]["jobs"][0]["retrying"].startswith("retrying at ")


def test_a_demand_watch_shows_its_ranking_and_each_reason(make_server) -> None:
    bot = make_server(hf_endpoint=HUB)
    watch = bot.store.watches.add(WatchKind.BASE_MODEL, "org/base", demand=True)
    ranking = [
        {"repo": "org/tune-b", "sha": SHA, "downloads": 5000, "likes": 50, "reason": "built (gptq)"},
        {
            "repo": "org/tune-c",
            "sha": SHA,
            "downloads": 900,
            "likes": 0,
            "reason": "fp8 already released by nv",
        },
        {"repo": "org/tune-d", "sha": SHA, "downloads": 10, "likes": 99, "reason": "over budget"},
    ]
    bot.store.watches.set_ranking(watch.id, ranking)

    [shown] = bot.client.get("/api/status").json()["watches"]
    assert [c["url"] for c in shown["ranking"]] == [f"{HUB}/org/tune-{n}" for n in "bcd"]
    page = bot.client.get("/").text
    rows = re.findall(
        r"<tr><td>(\d)</td><td><a href=\"[^\"]+\">([^<]+)</a></td>"
        r"<td>(\d+)</td><td>(\d+)</td><td>([^<]+)</td>",
        page,
    )
    assert rows == [
        ("1", "org/tune-b", "5000", "50", "built (gptq)"),
        ("2", "org/tune-c", "900", "0", "fp8 already released by nv"),
        ("3", "org/tune-d", "10", "99", "over budget"),
    ]


def test_a_build_waiting_for_its_cooldown_says_until_when(make_server) -> None:
    bot = make_server(hf_endpoint=HUB)
    until = utcnow() + timedelta(minutes=30)
    bot.store.jobs.enqueue("k1", _spec("gptq"), repo="org/model", not_before=until)
    bot.store.jobs.enqueue("k2", _spec("fp8"), repo="org/model")

    waiting, queued = bot.client.get("/api/status").json()["queue"]["jobs"]
    assert (waiting["waiting_until"], queued["waiting_until"]) == (f"{until:%Y-%m-%d %H:%M} UTC", None)
    assert f"waiting until {until:%Y-%m-%d %H:%M} UTC (cooldown)" in bot.client.get("/").text
