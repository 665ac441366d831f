"""Builds across machines: the bot (`executor = "celery"`, on PostgreSQL) and real `quantbot worker`s.

One hubsim, one bot on a fresh PostgreSQL database, a Redis server of the test's own, and workers on the
CPU standing for GPU hosts: `--sm 90` and `--sm 89`. The cases run in order and share the set-up:

1. a worker that holds every build in its quantize stage, run in a warm spare process; `/cancel` → every
   task revoked, the build process gone, no PR;
2. that worker SIGKILLed mid-quantize → the task goes to another sm90 worker, one release;
3. a webhook delivered five times → one job, one quantize task; the bot restarted mid-build carries on;
   a plan for SMs 90 and 89 → an engine task on each SM's worker; one PR, one checkpoint, a record per SM;
4. Redis stopped when the job is submitted → the job waits queued in the store, and runs when it is back;
5. sm89's worker away past `engine_deadline_s` → released without it; its engine, when it comes, is added
   to the PR and to the job's manifest in the store.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery_support import RedisServer, WorkerProcess, builds_running, drop_postgres, fresh_postgres
from e2e_support import BotProcess, E2EHub, publish_upstream, push_revision, wait_for

from state import JobStatus, Store, TaskState

pytestmark = pytest.mark.slow

BUILD_S = 240


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cbot(
    e2e_hub: E2EHub, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BotProcess]:
    database = fresh_postgres()
    if database is None:
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    url, admin = database
    running = BotProcess(tmp_path_factory.mktemp("cbot"), e2e_hub, database_url=url)
    running.write_config(
        executor="celery", broker_url=redis_server.url, target_sms=[90, 89], engine_deadline_s=300
    )
    running.start()
    running.cli("webhooks", "sync", "--url", running.url + "/webhooks/hub")
    try:
        yield running
    finally:
        if running.process is not None:
            running.stop()
        for hook in list(e2e_hub.server.hub.webhooks.hooks.values()):
            if hook.url.startswith(running.url):
                del e2e_hub.server.hub.webhooks.hooks[hook.id]
        drop_postgres(url, admin)


@pytest.fixture(scope="module")
def store(cbot: BotProcess) -> Iterator[Store]:
    opened = cbot.store()
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def workers(
    e2e_hub: E2EHub, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, WorkerProcess]]:
    """Started by the cases as they need them, stopped at the end."""
    root = tmp_path_factory.mktemp("workers")

    def make(name: str, sm: int, **env: str) -> WorkerProcess:
        return WorkerProcess(root / name, e2e_hub, redis_server.url, sm, env_extra=env)

    started = {
        "holding": make("holding", 90, QUANTBOT_BUILDERS_HOLD="quantize"),
        "sm90": make("sm90", 90),
        "sm89": make("sm89", 89),
    }
    yield started
    for worker in started.values():
        worker.stop()


def _job(store: Store, repo: str) -> Any:
    jobs = store.jobs.list(repo=repo)
    assert len(jobs) <= 1, jobs
    return jobs[0] if jobs else None


def _finished(store: Store, job_id: int) -> Any:
    job = store.jobs.get(job_id)
    return job if job.terminal else None


def _task_on(store: Store, job_id: int, worker: WorkerProcess) -> Any:
    tasks = [t for t in store.tasks.of_job(job_id) if (t.worker or "").startswith(worker.name_prefix)]
    return tasks[0] if tasks and tasks[0].state is TaskState.STARTED else None


def _holding(store: Store, job_id: int) -> bool:
    return "holding" in (store.jobs.get(job_id).progress_message or "")


def _bot_prs(hub: E2EHub, repo: str) -> list:
    return list(hub.api("maya").get_repo_discussions(repo, author="quantbot", discussion_type="pull_request"))


def _release_repo(upstream: str) -> str:
    return f"qb-releases/{upstream.split('/')[1]}-GPTQ"


def test_cancel_revokes_every_task_and_opens_no_pr(
    cbot: BotProcess, e2e_hub: E2EHub, tiny_model: Path, store: Store, workers: dict[str, WorkerProcess]
) -> None:
    holding = workers["holding"].start()
    repo, _ = publish_upstream(e2e_hub, tiny_model, "cel-cancel")
    maya = e2e_hub.api("maya")
    discussion = maya.create_discussion(repo, "Builds", description="/quantize gptq --sm 90")
    job = wait_for(lambda: _job(store, repo), 60, "the command's job")
    wait_for(lambda: _task_on(store, job.id, holding), 60, "the quantize task to start on the worker")
    wait_for(lambda: _holding(store, job.id), 120, "the build to reach its quantize stage")
    assert builds_running(holding.data_dir), "the worker runs the build in a process of its own"
    assert builds_running(holding.data_dir, warm=True), "a spare that imported the toolchain took it"

    maya.comment_discussion(repo, discussion.num, "/cancel")
    wait_for(lambda: store.jobs.get(job.id).status is JobStatus.CANCELLED, 30, "the job to be cancelled")
    wait_for(
        lambda: all(t.state is TaskState.REVOKED for t in store.tasks.of_job(job.id)), 30, "the tasks revoked"
    )
    wait_for(lambda: not builds_running(holding.data_dir), 30, "the build process to stop")
    [task] = store.tasks.of_job(job.id)
    assert task.kind == "quantize" and task.queue == "quantize"
    assert not e2e_hub.api("maya").repo_exists(_release_repo(repo))


def test_a_worker_killed_mid_quantize_its_task_runs_elsewhere_one_release(
    cbot: BotProcess, e2e_hub: E2EHub, tiny_model: Path, store: Store, workers: dict[str, WorkerProcess]
) -> None:
    holding = workers["holding"]
    repo, _ = publish_upstream(e2e_hub, tiny_model, "cel-kill")
    e2e_hub.api("maya").create_discussion(repo, "Builds", description="/quantize gptq --sm 90")
    job = wait_for(lambda: _job(store, repo), 60, "the command's job")
    wait_for(lambda: _task_on(store, job.id, holding), 60, "the quantize task to start")
    wait_for(lambda: _holding(store, job.id), 120, "the build to reach its quantize stage")
    lost_name = holding.name_prefix
    holding.kill()
    wait_for(lambda: not builds_running(holding.data_dir), 10, "the dead worker's build to die with it")

    sm90 = workers["sm90"].start()
    done = wait_for(lambda: _finished(store, job.id), BUILD_S, "the job to finish on the other worker")
    assert done.status is JobStatus.PUBLISHED, done.error
    tasks = store.tasks.of_job(job.id)
    quantize = [t for t in tasks if t.kind == "quantize"]
    assert [(t.attempt, t.state) for t in quantize] == [(1, TaskState.LOST), (2, TaskState.SUCCEEDED)]
    assert quantize[0].worker.startswith(lost_name)
    assert all(t.worker.startswith(sm90.name_prefix) for t in tasks if t.state is TaskState.SUCCEEDED)
    assert [(pr.num, pr.status) for pr in _bot_prs(e2e_hub, _release_repo(repo))] == [
        (store.releases.find(build_key=done.build_key)[0].pr_number, "open")
    ]


def test_two_sms_fan_out_one_quantize_an_engine_per_sm_one_pr(
    cbot: BotProcess, e2e_hub: E2EHub, tiny_model: Path, store: Store, workers: dict[str, WorkerProcess]
) -> None:
    sm89 = workers["sm89"].start()
    sm90 = (
        workers["sm90"] if workers["sm90"].process else workers["sm90"].start()
    )  # run alone, or after the kill
    repo, _ = publish_upstream(e2e_hub, tiny_model, "cel-fan")
    cbot.cli("watch", "add", "repo", repo, "--formats", "gptq", "--approval", "approval")
    cbot.cli("webhooks", "sync", "--url", cbot.url + "/webhooks/hub")
    sha = push_revision(e2e_hub, repo, "revision 2")
    delivery = wait_for(lambda: _delivery(e2e_hub, repo, sha), 30, "the hub's webhook")
    answers = [cbot.post(json.dumps(delivery).encode()) for _ in range(5)]
    assert {a.status_code for a in answers} == {202}
    job = wait_for(lambda: _job(store, repo), 60, "the job")
    assert job.spec["target_sms"] == [90, 89]

    # the bot dies mid-build and comes back: the build goes on and is followed again, not sent again
    wait_for(lambda: any(t.state is TaskState.STARTED for t in store.tasks.of_job(job.id)), 60, "a start")
    assert cbot.stop(signal.SIGKILL) == -signal.SIGKILL
    cbot.start()

    done = wait_for(lambda: _finished(store, job.id), BUILD_S, "the release")
    assert done.status is JobStatus.PUBLISHED, done.error
    tasks = store.tasks.of_job(job.id)
    assert [t.kind for t in tasks].count("quantize") == 1
    engines = {t.sm: t for t in tasks if t.kind == "engine"}
    assert set(engines) == {90, 89}
    assert engines[90].queue == "sm90" and engines[90].worker.startswith(sm90.name_prefix)
    assert engines[89].queue == "sm89" and engines[89].worker.startswith(sm89.name_prefix)

    [release] = store.releases.find(build_key=done.build_key)
    [pr] = _bot_prs(e2e_hub, release.repo_id)
    assert pr.num == release.pr_number
    maya = e2e_hub.api("maya")
    files = maya.list_repo_files(release.repo_id, revision=f"refs/pr/{pr.num}")
    assert [f for f in files if f.endswith(".safetensors")] == ["model.safetensors"]
    manifest = json.loads(
        Path(maya.hf_hub_download(release.repo_id, "manifest.json", revision=f"refs/pr/{pr.num}")).read_text()
    )
    records = {e["sm"]: e for e in manifest["engines"]}
    assert set(records) == {90, 89}
    assert all(r["status"] == "not_built" and r["reason"] for r in records.values())
    description = maya.get_discussion_details(release.repo_id, pr.num).events[0].content
    assert "sm90, sm89" in description

    # each SM's task ran its serving check on its CPU worker, on the release by repo id at the draft's commit:
    # the GPU runtimes not run and why (no figure), transformers (GPTQ runs on CPU) measured, labelled CPU
    checked = {(r["sm"], r["runtime"]): r for r in manifest["serving"]}
    assert set(checked) == {(sm, rt) for sm in (90, 89) for rt in ("vllm", "sglang", "transformers")}
    staged_at = engines[90].result["serving"][0]["revision"]
    for sm in (90, 89):
        vllm, cpu = checked[sm, "vllm"], checked[sm, "transformers"]
        assert (vllm["status"], vllm["reason"]) == ("not_run", "vLLM is not installed on this worker")
        assert vllm["tokens_per_s"] is None and vllm["load_s"] is None
        assert (cpu["status"], cpu["device"], cpu["revision"]) == ("passed", "cpu", staged_at), cpu["reason"]
        assert cpu["load_s"] > 0 and cpu["tokens_per_s"] > 0 and cpu["peak_gpu_memory_bytes"] is None
    card = Path(maya.hf_hub_download(release.repo_id, "README.md", revision=f"refs/pr/{pr.num}")).read_text()
    tested = card.split("## Tested on")[1].split("## Usage")[0]
    assert "| sm90 task, run on CPU |" in tested and "(CPU, transformers)" in tested
    assert "| sm89 | vLLM | not run: vLLM is not installed on this worker | — |" in tested


def test_redis_down_at_submit_the_job_waits_and_runs_when_it_is_back(
    cbot: BotProcess, e2e_hub: E2EHub, tiny_model: Path, store: Store, redis_server: RedisServer,
    workers: dict[str, WorkerProcess],
) -> None:  # fmt: skip
    repo, _ = publish_upstream(e2e_hub, tiny_model, "cel-redis")
    redis_server.stop()
    e2e_hub.api("maya").create_discussion(repo, "Builds", description="/quantize gptq --sm 90")
    job = wait_for(lambda: _job(store, repo), 60, "the job, taken while the broker is down")
    assert store.jobs.get(job.id).status is JobStatus.QUEUED
    redis_server.start()
    done = wait_for(lambda: _finished(store, job.id), BUILD_S, "the job to run once Redis is back")
    assert done.status is JobStatus.PUBLISHED, done.error
    assert [t.kind for t in store.tasks.of_job(job.id) if t.state is TaskState.SUCCEEDED] == [
        "quantize",
        "engine",
    ]


def test_an_engine_after_the_deadline_is_added_to_the_pr_and_to_the_jobs_manifest(
    cbot: BotProcess, e2e_hub: E2EHub, tiny_model: Path, store: Store, redis_server: RedisServer,
    workers: dict[str, WorkerProcess],
) -> None:  # fmt: skip
    cbot.stop()
    cbot.write_config(
        executor="celery", broker_url=redis_server.url, target_sms=[90, 89], engine_deadline_s=2
    )
    cbot.start()
    if workers["sm90"].process is None:
        workers["sm90"].start()
    workers["sm89"].stop()  # sm89's engine task waits in its queue, past the deadline
    repo, _ = publish_upstream(e2e_hub, tiny_model, "cel-late")
    e2e_hub.api("maya").create_discussion(repo, "Builds", description="/quantize gptq")
    job = wait_for(lambda: _job(store, repo), 60, "the command's job")
    done = wait_for(lambda: _finished(store, job.id), BUILD_S, "the release without sm89's engine")
    assert done.status is JobStatus.PUBLISHED, done.error
    missing = {e["sm"]: e for e in done.manifest["engines"]}[89]
    assert "engine_deadline_s" in missing["reason"]

    workers["sm89"].start()
    late = wait_for(lambda: _with_late_record(store, job.id, 89), 120, "sm89's record in the job's manifest")
    assert late.status is JobStatus.PUBLISHED and _record(late, 89)["status"] == "not_built"
    [release] = store.releases.find(build_key=done.build_key)
    on_pr = json.loads(
        Path(
            e2e_hub.api("maya").hf_hub_download(
                release.repo_id, "manifest.json", revision=f"refs/pr/{release.pr_number}"
            )
        ).read_text()
    )
    assert {e["sm"]: e for e in on_pr["engines"]}[89] == _record(late, 89), "the store says what the PR says"


def _record(job: Any, sm: int) -> dict:
    return {e["sm"]: e for e in (job.manifest or {}).get("engines", [])}[sm]


def _with_late_record(store: Store, job_id: int, sm: int) -> Any:
    """The job once its manifest holds `sm`'s own record instead of the deadline's placeholder."""
    job = store.jobs.get(job_id)
    return job if "engine_deadline_s" not in _record(job, sm)["reason"] else None


def _delivery(hub: E2EHub, repo: str, sha: str) -> dict | None:
    for d in hub.server.hub.webhooks.deliveries():
        refs = d.payload.get("updatedRefs") or []
        if d.payload["repo"]["name"] == repo and any(r["newSha"] == sha for r in refs):
            return d.payload if d.status is not None else None
    return None
