"""GET /healthz, /metrics and the status page; and the server's footprint (no torch, small RSS)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from prometheus_client.parser import text_string_to_metric_families

from state import CommandStatus, JobStatus, ReleaseKind


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_healthz(bot) -> None:
    response = bot.client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_metrics_count_events_jobs_queue_durations_and_refusals(bot, payloads) -> None:
    event_id = bot.deliver(payloads["main_commit"]).json()["event_id"]
    bot.deliver(payloads["command_comment"])
    bot.deliver(payloads["main_commit"], secret=None)
    bot.store.events.mark_processed(event_id, "handled")
    built, _ = bot.store.jobs.enqueue("k1", {}, repo="some-user/some-repo")
    bot.store.jobs.enqueue("k2", {}, repo="some-user/some-repo")
    bot.store.jobs.claim("w", 60)
    bot.store.jobs.transition(built.id, {JobStatus.RUNNING}, JobStatus.BUILT, owner="w")

    response = bot.client.get("/metrics")

    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    assert samples[("quantbot_events_total", (("outcome", "handled"), ("scope", "repo.content")))] == 1
    assert samples[("quantbot_events_total", (("outcome", "pending"), ("scope", "discussion.comment")))] == 1
    assert samples[("quantbot_jobs", (("status", "queued"),))] == 1
    assert samples[("quantbot_jobs", (("status", "built"),))] == 1
    assert samples[("quantbot_jobs", (("status", "failed"),))] == 0
    assert samples[("quantbot_queue_depth", ())] == 1
    assert samples[("quantbot_build_duration_seconds_count", ())] == 1
    assert samples[("quantbot_build_duration_seconds_bucket", (("le", "+Inf"),))] == 1
    assert samples[("quantbot_publish_duration_seconds_count", ())] == 0
    assert samples[("quantbot_webhook_requests_total", (("status", "401"),))] == 1
    assert samples[("quantbot_webhook_requests_total", (("status", "202"),))] == 2
    assert samples[("quantbot_webhook_ack_seconds_count", ())] == 2


def test_status_page_shows_queue_progress_releases_and_refusals(bot) -> None:
    store = bot.store
    running, _ = store.jobs.enqueue("k1", {}, repo="org/model", label="org/model@575db8b gptq")
    store.jobs.enqueue("k2", {}, repo="org/model", label="org/model@575db8b fp8")
    store.jobs.claim("worker-1", 60)
    store.jobs.heartbeat(running.id, "worker-1", 60, progress=0.42, message="calibrating layer 3/8")
    store.releases.record(
        build_key="k0", repo_id="quantbot/model-gptq", kind=ReleaseKind.PR, pr_number=3,
        url="http://127.0.0.1:8765/quantbot/model-gptq/discussions/3",
    )  # fmt: skip
    store.releases.record(
        build_key="kx", repo_id="quantbot/evil", kind=ReleaseKind.REPO, url="javascript:alert(1)"
    )
    command, _ = store.commands.record(
        repo="org/model",
        discussion_num=4,
        comment_id="c1",
        author="mallory",
        text="/quantize <script>x</script>",
    )
    store.commands.update(command.id, status=CommandStatus.REFUSED, reason="only org's members may ask")

    response = bot.client.get("/")

    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "org/model@575db8b gptq" in page and "42%" in page and "calibrating layer 3/8" in page
    assert "org/model@575db8b fp8" in page  # queued
    assert '<a href="http://127.0.0.1:8765/quantbot/model-gptq/discussions/3">quantbot/model-gptq</a>' in page
    assert "PR #3" in page
    assert "javascript:" not in page  # not a link; the repo name is still listed
    assert "mallory" in page and "only org&#39;s members may ask" in page
    assert "<script>x" not in page and "&lt;script&gt;x" in page


def test_status_page_when_nothing_happened(bot) -> None:
    page = bot.client.get("/").text
    assert "The queue is empty." in page and "No releases yet." in page and "Nothing was refused." in page


FOOTPRINT = textwrap.dedent(
    """
    import json, os, sys, tempfile
    import httpx
    from bot.intake.server import create_app
    from bot.threaded_server import ThreadedServer
    from bot.settings import load_settings
    from state import open_store, sqlite_url

    data = tempfile.mkdtemp()
    settings = load_settings(data_dir=data, webhook_secret="s")
    app = create_app(settings, open_store(sqlite_url(data)))
    server = ThreadedServer(app).start()
    url = server.url
    hook = httpx.post(url + "/webhooks/hub", content=sys.stdin.read(), headers={"X-Webhook-Secret": "s"})
    page = httpx.get(url + "/")
    rss_kib = int(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmRSS:")))
    toolchains = ("torch", "transformers", "modelopt", "gptqmodel", "tensorrt_llm")
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in toolchains)
    report = {"status": [hook.status_code, page.status_code], "heavy": heavy, "rss_mib": rss_kib / 1024}
    print(json.dumps(report))
    server.stop()
    """
)


def test_server_process_never_imports_torch_and_stays_small(payloads) -> None:
    result = subprocess.run(
        [sys.executable, "-c", FOOTPRINT],
        input=json.dumps(payloads["main_commit"]),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])

    assert report["status"] == [202, 200]
    assert report["heavy"] == []
    assert report["rss_mib"] < 150, report
