"""Benchmark dispatch: job queued → running on a worker, local vs Celery; the status page and /metrics with
10,000 jobs on SQLite and PostgreSQL; webhook → PR of the demo's GPTQ build, local vs Celery, and the share
of it spent importing torch, transformers and the toolchains.

    python benchmarks/bench_dispatch.py [--jobs 50] [--rows 10000] [--broker redis://127.0.0.1:6379/15]
                                        [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
                                        [--skip-demo]

1. Dispatch: one job at a time, from `enqueue` to the build starting: the `Orchestrator` claims the job
   and sends its quantize task. Local: its `LocalTransport` starts the worker process (the time the process
   itself writes on starting). Celery: a real `quantbot worker` process starts it (its state STARTED in the
   result backend, read every 2 ms). The task ids are fenced first, so each task returns at once instead of
   building: what is timed is the way to the worker, not the build.
2. Pages: 10,000 jobs (with their events) inserted, then GET / and GET /metrics through the ASGI app, 20 each.
3. Webhook → PR: `quantbot demo --exit` run with the local executor, and with Celery workers cold (no
   spares: `warm_toolchains` empty) and warm (the demo's default: each worker's spare build processes have
   imported the GPTQ and engine toolchains before the webhook comes); from the webhook's arrival (stored
   event) to the release's record, for the first (webhook) build. The import share of a cold run is
   `import torch, transformers, gptqmodel` in a fresh interpreter, paid by the build process, plus with
   Celery `import torch` paid by the engine tasks' processes (one per SM, side by side on their workers); a
   warm run pays none of it on its critical path (the spares' own logs say how long their imports took).

Targets: dispatch median < 100 ms on loopback; both pages < 200 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

SHA = "0" * 40


def _stats(label: str, seconds: list[float], target_ms: float | None = None) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    verdict = ""
    if target_ms is not None:
        met = "met" if statistics.median(ms) < target_ms else "MISSED"
        verdict = f"  (target < {target_ms:.0f} ms: {met})"
    return f"{label:<44} median {statistics.median(ms):8.1f} ms   p95 {p95:8.1f} ms   n={len(ms)}{verdict}"


def _spec(root: Path, i: int) -> dict[str, Any]:
    from builders.spec import BuildSpec

    spec = BuildSpec(
        repo_id="alice/bench", revision=f"{i:040x}", format="gptq", target_sms=[90],
        work_dir=root / f"w{i}", output_dir=root / f"o{i}",
    )  # fmt: skip
    return spec.model_dump(mode="json")


# ---------------------------------------------------------------------------------------------- dispatch


def dispatch_local(root: Path, jobs: int) -> list[float]:
    from bot.execution.local import LocalTransport
    from bot.execution.orchestrator import Orchestrator
    from bot.hub import Hub
    from bot.publishing.staged import StagedPublisher
    from bot.settings import load_settings
    from state import open_store, sqlite_url

    # The "builder" only writes the time it started beside its spec (argv: -m builders run SPEC) and exits.
    stamp = ["/bin/sh", "-c", 'date +%s.%N > "$3.started"']
    settings = load_settings(None, data_dir=root, worker_command=stamp, lease_s=60, namespace="bench")
    store = open_store(sqlite_url(root))
    publisher = StagedPublisher(Hub("http://127.0.0.1:9"), settings)  # nothing is published here
    executor = Orchestrator(settings, store, publisher, LocalTransport(settings), poll_s=0.5).start()
    times = []
    try:
        for i in range(jobs):
            spec = _spec(root, i)
            started = Path(spec["work_dir"]) / "spec.json.started"
            t0 = time.time()
            job, _ = store.jobs.enqueue(f"local-{i}", spec, repo="alice/bench")
            while not (store.jobs.get(job.id).terminal and started.exists()):
                time.sleep(0.01)
            times.append(float(started.read_text()) - t0)
    finally:
        executor.stop()
        store.close()
    return times


def dispatch_celery(root: Path, jobs: int, broker: str, hub_url: str, token: str) -> list[float]:
    from celery.result import AsyncResult

    from bot.execution.celery_transport import CeleryTransport
    from bot.execution.orchestrator import Orchestrator
    from bot.host.celery_app import fence, make_app
    from bot.hub import Hub
    from bot.publishing.staged import StagedPublisher
    from bot.settings import load_settings
    from state import open_store, sqlite_url

    settings = load_settings(None, data_dir=root, broker_url=broker, hf_endpoint=hub_url, hf_token=token)
    app = make_app(settings)
    app.backend.client.flushdb()
    # No spares: the fenced tasks never start a build, and spares importing would only load the machine.
    env = os.environ | {
        "QUANTBOT_BROKER_URL": broker, "QUANTBOT_DATA_DIR": str(root / "worker"), "HF_ENDPOINT": hub_url,
        "HF_TOKEN": token, "QUANTBOT_WARM_TOOLCHAINS": "",
    }  # fmt: skip
    root.mkdir(parents=True, exist_ok=True)
    log = (root / "worker.log").open("ab")
    worker = subprocess.Popen(
        [sys.executable, "-c", "from bot.cli import main; main()", "worker", "--sm", "90"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    store = open_store(sqlite_url(root))
    publisher = StagedPublisher(Hub(hub_url, token), settings)
    executor = Orchestrator(settings, store, publisher, CeleryTransport(app))
    times = []
    try:
        time.sleep(8)  # the worker connects and is ready
        executor.start()
        for i in range(jobs):
            key = uuid.uuid4().hex
            spec = _spec(root, i)
            expected = store.jobs.list(limit=1, newest_first=True)
            job_id = (expected[0].id if expected else 0) + 1
            task_id = f"qb-{job_id}-{key[:12]}-quantize-1"
            fence(app, [task_id])
            t0 = time.perf_counter()
            store.jobs.enqueue(key, spec, repo="alice/bench")
            result = AsyncResult(task_id, app=app)
            while result.state not in ("STARTED", "SUCCESS"):
                time.sleep(0.002)
            times.append(time.perf_counter() - t0)
            while result.state != "SUCCESS":
                time.sleep(0.005)
    finally:
        executor.stop()
        worker.terminate()
        worker.wait(30)
        store.close()
    return times


# ------------------------------------------------------------------------------------------------- pages


def pages(url: str, rows: int) -> tuple[list[float], list[float]]:
    from fastapi.testclient import TestClient
    from sqlalchemy import insert

    from bot.intake.server import create_app
    from bot.settings import load_settings
    from state import JobEvent, JobStatus, open_store
    from state.models import Job, utcnow

    store = open_store(url)
    statuses = list(JobStatus)
    now = utcnow()
    batch = [
        {
            "build_key": f"k{i}", "repo": f"org/model-{i % 500}", "label": f"gptq @ {i:07x}",
            "spec": {"format": "gptq", "target_sms": [90, 89]}, "status": statuses[i % len(statuses)],
            "attempts": 1, "progress": 0.5, "created_at": now, "updated_at": now,
        }
        for i in range(rows)
    ]  # fmt: skip
    with store.db.write() as s:
        s.execute(insert(Job), batch)
        ids = [row[0] for row in s.execute(Job.__table__.select().with_only_columns(Job.id))]
        s.execute(insert(JobEvent), [{"job_id": i, "to_status": JobStatus.QUEUED, "at": now} for i in ids])
    settings = load_settings(None, database_url=url)
    client = TestClient(create_app(settings, store))
    page, metrics = [], []
    for _ in range(20):
        t0 = time.perf_counter()
        assert client.get("/").status_code == 200
        page.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        assert client.get("/metrics").status_code == 200
        metrics.append(time.perf_counter() - t0)
    store.close()
    return page, metrics


def _postgres(admin_url: str) -> tuple[str, Any] | None:
    try:
        import psycopg

        admin = psycopg.connect(admin_url, connect_timeout=2, autocommit=True)
    except Exception:
        return None
    name = f"qb_bench_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rpartition("/")[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}", admin


# ---------------------------------------------------------------------------------------- webhook → PR


def demo_webhook_to_pr(executor: str, broker: str, warm: str) -> tuple[float, list[str]]:
    """Seconds from the webhook's arrival to the release's record, for the demo's first GPTQ build, and
    what the spares that ran its builds said of their imports."""
    from bot.commands import demo as demo_module
    from builders.warm import READY
    from state import open_store, sqlite_url

    root = Path(tempfile.mkdtemp(prefix="qb-bench-demo-"))
    os.environ.update(HF_HOME=str(root / "hf"), HF_HUB_DISABLE_PROGRESS_BARS="1", QUANTBOT_BROKER_URL=broker,
                      QUANTBOT_WARM_TOOLCHAINS=warm)  # fmt: skip
    demo = demo_module._Demo(root, 0, executor)
    try:
        with open(os.devnull, "w") as quiet, _stdout(quiet):
            demo.run()
    finally:
        demo.stop()
    store = open_store(sqlite_url(root / "bot"), upgrade=False)
    release = min(store.releases.find(), key=lambda r: r.created_at)
    assert release.job_id is not None, "a release of the demo's build records its job"
    job = store.jobs.get(release.job_id)
    event = next(e for e in store.events.recent(100) if e.id == job.source_event_id)
    store.close()
    paid = [
        line.split(READY, 1)[1].strip() for log in sorted(root.glob("worker-sm*/builds/*/work/worker.log"))
        for line in log.read_text(errors="replace").splitlines() if READY in line
    ]  # fmt: skip
    return (release.created_at - event.received_at).total_seconds(), paid


class _stdout:
    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def __enter__(self) -> None:
        self.saved = sys.stdout
        sys.stdout = self.stream

    def __exit__(self, *exc: object) -> None:
        sys.stdout = self.saved


def import_seconds(code: str, runs: int = 3) -> float:
    """Median wall time of `code` in a fresh interpreter."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--skip-demo", action="store_true", help="Leave out webhook → PR (two demo runs).")
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.ERROR)
    from bot.hubsim import Directory, HubService, HubsimServer, User

    token = "hf_bench_" + uuid.uuid4().hex[:8]
    hub = HubsimServer(HubService(Directory([User("quantbot", token)]))).start()
    with tempfile.TemporaryDirectory() as tmp:
        local = dispatch_local(Path(tmp) / "local", args.jobs)
        celery = dispatch_celery(Path(tmp) / "celery", args.jobs, args.broker, hub.url, token)
    hub.stop()
    print("Dispatch: job queued → build started on a worker, one job at a time")
    print(_stats("  local executor (claim + worker process)", local, 100))
    print(_stats("  Celery executor (Redis, quantbot worker)", celery, 100))

    print(f"\nPages with {args.rows} jobs in the store (ASGI, 20 requests each)")
    with tempfile.TemporaryDirectory() as tmp:
        from state import sqlite_url

        page, metrics = pages(sqlite_url(Path(tmp)), args.rows)
        print(_stats("  SQLite      GET / (status page)", page, 200))
        print(_stats("  SQLite      GET /metrics", metrics, 200))
    pg = _postgres(args.postgres)
    if pg is None:
        print("  PostgreSQL  not reachable: left out")
    else:
        url, admin = pg
        try:
            page, metrics = pages(url, args.rows)
            print(_stats("  PostgreSQL  GET / (status page)", page, 200))
            print(_stats("  PostgreSQL  GET /metrics", metrics, 200))
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{url.rpartition("/")[2]}" WITH (FORCE)')
            admin.close()

    if args.skip_demo:
        return
    toolchains = import_seconds("import torch, transformers, gptqmodel")
    torch_only = import_seconds("import torch")
    print("\nWebhook → PR, the demo's GPTQ build (tiny Llama, CPU)")
    # On the critical path: the build process's imports; with Celery also the engine task's process (it
    # imports torch to read the device), the two SMs' engine tasks running side by side on two workers.
    # Warm: the spares imported both before the webhook came.
    runs = [
        ("local", "local", "", toolchains),
        ("celery", "Celery, cold", "", toolchains + torch_only),
        ("celery", "Celery, warm", "gptq,engine", 0.0),
    ]
    for executor, label, warm, paid in runs:
        total, ahead = demo_webhook_to_pr(executor, args.broker, warm)
        share = f"{paid:4.1f} s ({paid / total:.0%})"
        print(f"  {label:<13} {total:6.1f} s   imports on its critical path {share}")
        for said in ahead:
            print(f"  {'':<13} a spare had imported {said}")


if __name__ == "__main__":
    main()
