"""Builds as Hugging Face Jobs on hubsim: the bot (`executor = "hf-jobs"`) sends each task as a Job.

One hubsim, whose Jobs run as local processes (`bot.hubsim.jobs`), and a bot process planning for SMs 89 and
90: the quantize Job and the sm89 engine Job run on `l4x1` (the cheapest sm89 flavour that holds the tiny
model), the sm90 engine Job on `h200`; one PR. The bot's token reaches the Jobs only as a secret. Then, with
the builders' test switches in the Jobs' machine environment (hubsim's `PUT /_hubsim/jobs/environment`): a
Job whose build runs out of memory exits 1 and fails the build with the end of its log; a Job held in its
quantize stage is cancelled by `/cancel`; Jobs the Hub loses (hubsim's delete route) are sent again until
`max_attempts` (a bot with a budget of 0: tests/e2e/test_e2e_jobs_budget.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from celery_support import builds_running
from e2e_support import BotProcess, E2EHub, publish_upstream, wait_for
from jobs_support import forget_bot, jobs_bot

from state import JobStatus, Store, TaskState

pytestmark = pytest.mark.slow

BUILD_S = 300


@pytest.fixture(scope="module")
def jbot(e2e_hub: E2EHub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotProcess]:
    running = jobs_bot(e2e_hub, tmp_path_factory.mktemp("jbot"))
    yield running
    forget_bot(e2e_hub, running)


@pytest.fixture
def store(jbot: BotProcess) -> Iterator[Store]:
    opened = jbot.store()
    yield opened
    opened.close()


@pytest.fixture
def machine_env(e2e_hub: E2EHub) -> Iterator[Callable[..., None]]:
    """Sets what the Jobs started next find in their environment (as their image's ENV); cleared after."""

    def put(**env: str) -> None:
        httpx.put(f"{e2e_hub.url}/_hubsim/jobs/environment", json=env).raise_for_status()

    yield put
    put()


def _job(store: Store, repo: str) -> Any:
    jobs = store.jobs.list(repo=repo)
    return jobs[0] if jobs else None


def _ask(e2e_hub: E2EHub, store: Store, model: Path, name: str, fmt: str = "gptq") -> tuple[str, Any, int]:
    """maya asks for an sm89 build of a fresh upstream repo: the repo, the job, the discussion's number."""
    repo, _ = publish_upstream(e2e_hub, model, name)
    command = f"/quantize {fmt} --sm 89"
    discussion = e2e_hub.api("maya").create_discussion(repo, "Builds", description=command)
    return repo, wait_for(lambda: _job(store, repo), 60, "the command's job"), discussion.num


def _ended(store: Store, job_id: int, timeout: float = BUILD_S) -> Any:
    return wait_for(lambda: (j := store.jobs.get(job_id)).terminal and j or None, timeout, "the job to end")


def test_a_job_for_sms_89_and_90_runs_as_jobs_on_their_flavours_into_one_pr(
    jbot: BotProcess, e2e_hub: E2EHub, tiny_model: Path
) -> None:
    store = jbot.store()
    repo, _ = publish_upstream(e2e_hub, tiny_model, "jobs-fan")
    maya = e2e_hub.api("maya")
    maya.create_discussion(repo, "Builds", description="/quantize gptq --sm 89,90")
    job = wait_for(lambda: _job(store, repo), 60, "the command's job")
    done = wait_for(lambda: (j := store.jobs.get(job.id)).terminal and j or None, BUILD_S, "the release")
    assert done.status is JobStatus.PUBLISHED, done.error

    tasks = store.tasks.of_job(job.id)
    placed = sorted((t.kind, t.sm or 0, t.queue) for t in tasks)
    assert placed == [("engine", 89, "l4x1"), ("engine", 90, "h200"), ("quantize", 0, "l4x1")]
    assert all(t.state is TaskState.SUCCEEDED for t in tasks)
    assert all(t.worker and t.worker.startswith(f"{e2e_hub.url}/jobs/qb-releases/") for t in tasks)
    assert all(t.running_s is not None and t.cost_usd is not None for t in tasks)

    hub_jobs = [e2e_hub.server.hub.jobs.jobs[t.task_id] for t in tasks]
    assert sorted(j.flavor for j in hub_jobs) == ["h200", "l4x1", "l4x1"]
    token = e2e_hub.tokens["quantbot"]
    for hub_job in hub_jobs:
        assert hub_job.spec["dockerImage"] == "quantbot-worker:test"
        assert hub_job.spec["secrets"] == {"HF_TOKEN": token}  # the token travels only as a secret
        assert token not in str(hub_job.spec["command"]) + str(hub_job.spec["environment"])
        assert token not in "\n".join(line for _, line in hub_job.logs)
        listed = maya.inspect_job(job_id=hub_job.id, namespace="qb-releases")
        assert token not in str(listed.secrets) + str(listed.environment)

    [release] = store.releases.find(build_key=done.build_key)
    prs = list(maya.get_repo_discussions(release.repo_id, author="quantbot", discussion_type="pull_request"))
    assert [pr.num for pr in prs] == [release.pr_number]
    store.close()


def test_a_job_that_exits_1_fails_the_build_with_the_end_of_its_log(
    store: Store, e2e_hub: E2EHub, tiny_model: Path, machine_env: Callable[..., None]
) -> None:
    machine_env(QUANTBOT_BUILDERS_FAULT="cuda_oom_always")  # every calibration batch runs out of memory
    _, job, _ = _ask(e2e_hub, store, tiny_model, "jobs-fail")
    done = _ended(store, job.id)
    assert done.status is JobStatus.FAILED
    [task] = store.tasks.of_job(job.id)
    hub_job = e2e_hub.server.hub.jobs.jobs[task.task_id]
    assert (hub_job.stage, hub_job.message) == ("ERROR", "Job failed with exit code: 1")
    assert task.state is TaskState.FAILED and task.running_s is not None
    assert f"Job {task.worker} ended in ERROR (Job failed with exit code: 1)" in done.error
    printed = [line for _, line in hub_job.logs if not line.startswith(("{", "====="))]
    assert printed[-1].startswith("the quantize task failed: quantize: CUDA out of memory during calibration")
    assert done.error.endswith(printed[-1]), "the end of the Job's log ends the error"
    assert len(printed) > 1 and printed[-2] in done.error  # the build's own log before it
    assert e2e_hub.tokens["quantbot"] not in "\n".join(printed)


def test_cancel_cancels_the_running_job_and_opens_no_pr(
    store: Store, e2e_hub: E2EHub, tiny_model: Path, machine_env: Callable[..., None]
) -> None:
    machine_env(QUANTBOT_BUILDERS_HOLD="quantize")  # FP8 holds at its first calibration batch
    repo, job, num = _ask(e2e_hub, store, tiny_model, "jobs-cancel", "fp8")
    wait_for(lambda: "holding" in (store.jobs.get(job.id).progress_message or ""), BUILD_S, "the Job to hold")
    [task] = store.tasks.of_job(job.id)
    hub_job = e2e_hub.server.hub.jobs.jobs[task.task_id]
    assert hub_job.stage == "RUNNING" and builds_running(hub_job.folder)

    maya = e2e_hub.api("maya")
    maya.comment_discussion(repo, num, "/cancel")
    wait_for(lambda: store.jobs.get(job.id).status is JobStatus.CANCELLED, 30, "the job to be cancelled")
    wait_for(lambda: store.tasks.of_job(job.id)[0].state is TaskState.REVOKED, 30, "the task revoked")
    assert maya.inspect_job(job_id=hub_job.id, namespace="qb-releases").status.stage == "CANCELED"
    wait_for(lambda: not builds_running(hub_job.folder), 30, "the Job's build process to stop")
    assert not maya.repo_exists(f"qb-releases/{repo.split('/')[1]}-FP8")


def test_a_job_the_hub_loses_is_sent_again_until_max_attempts(
    store: Store, e2e_hub: E2EHub, tiny_model: Path, machine_env: Callable[..., None]
) -> None:
    machine_env(QUANTBOT_BUILDERS_HOLD="quantize")  # no attempt finishes before the Hub loses it
    _, job, _ = _ask(e2e_hub, store, tiny_model, "jobs-lost")
    for attempt in (1, 2):  # max_attempts = 2
        sent = wait_for(
            lambda n=attempt: next((t for t in store.tasks.of_job(job.id) if t.attempt == n), None),
            60, f"attempt {attempt}'s Job",
        )  # fmt: skip
        httpx.post(f"{e2e_hub.url}/_hubsim/jobs/{sent.task_id}/delete").raise_for_status()
    done = _ended(store, job.id, 60)
    assert done.status is JobStatus.FAILED
    assert "quantize task lost" in (done.error or "") and "2 times" in (done.error or "")
    tasks = store.tasks.of_job(job.id)
    assert [(t.kind, t.attempt, t.state) for t in tasks] == [
        ("quantize", 1, TaskState.LOST), ("quantize", 2, TaskState.LOST)
    ]  # fmt: skip
    assert {e2e_hub.server.hub.jobs.jobs[t.task_id].stage for t in tasks} == {"DELETED"}
