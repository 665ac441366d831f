"""GET /healthz and /metrics; and the server's footprint (no torch, small RSS)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from prometheus_client.parser import text_string_to_metric_families

from state import JobStatus


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_healthz(bot) -> None:
    response = bot.client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok", "webhooks": "enabled"})


def test_healthz_says_webhooks_are_refused_without_a_secret(make_server, payloads) -> None:
    bot = make_server(webhook_secret=None)
    health = bot.client.get("/healthz").json()
    assert health["status"] == "ok" and "no webhook_secret" in health["webhooks"]
    assert "QUANTBOT_WEBHOOK_SECRET" in bot.deliver(payloads["main_commit"]).json()["error"]


def test_metrics_count_events_jobs_queue_durations_and_refusals(bot, payloads) -> None:
    event_id = bot.stored(bot.deliver(payloads["main_commit"])).id
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
