"""Builds as Hugging Face Jobs on hubsim: the bot (`executor = "hf-jobs"`) sends each task as a Job.

One hubsim, whose Jobs run as local processes (`bot.hubsim.jobs`), and a bot process planning for SMs 89 and
90: the quantize Job and the sm89 engine Job run on `l4x1` (the cheapest sm89 flavour that holds the tiny
model), the sm90 engine Job on `h200`; one PR. The bot's token reaches the Jobs only as a secret. A second
bot with a budget of 0 refuses a build with the budget, the spend and the reset date.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import BotProcess, E2EHub, publish_upstream, wait_for

from state import JobStatus, Store, TaskState

pytestmark = pytest.mark.slow

BUILD_S = 300


def _bot(e2e_hub: E2EHub, root: Path, **extra: Any) -> BotProcess:
    running = BotProcess(root, e2e_hub)
    running.write_config(
        executor="hf-jobs", jobs_image="quantbot-worker:test", jobs_namespace="qb-releases",
        target_sms=[89, 90], engine_deadline_s=300, **extra,
    )  # fmt: skip
    running.start()
    running.cli("webhooks", "sync", "--url", running.url + "/webhooks/hub")
    return running


@pytest.fixture(scope="module")
def jbot(e2e_hub: E2EHub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotProcess]:
    running = _bot(e2e_hub, tmp_path_factory.mktemp("jbot"))
    yield running
    _forget(e2e_hub, running)


def _forget(e2e_hub: E2EHub, running: BotProcess) -> None:
    running.stop()
    for hook in list(e2e_hub.server.hub.webhooks.hooks.values()):
        if hook.url.startswith(running.url):
            del e2e_hub.server.hub.webhooks.hooks[hook.id]


def _job(store: Store, repo: str) -> Any:
    jobs = store.jobs.list(repo=repo)
    return jobs[0] if jobs else None


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


def test_a_budget_of_zero_refuses_the_build_with_budget_spend_and_reset(
    e2e_hub: E2EHub, tiny_model: Path, tmp_path: Path
) -> None:
    (tmp_path / "poor").mkdir()
    poor = _bot(e2e_hub, tmp_path / "poor", jobs_monthly_budget_usd=0)
    try:
        store = poor.store()
        repo, _ = publish_upstream(e2e_hub, tiny_model, "jobs-poor")
        maya = e2e_hub.api("maya")
        discussion = maya.create_discussion(repo, "Builds", description="/quantize gptq --sm 89")

        def reply() -> str | None:
            details = maya.get_discussion_details(repo, discussion.num)
            texts = [e.content for e in details.events if e.type == "comment" and e.author == "quantbot"]
            return texts[-1] if texts else None

        text = wait_for(reply, 60, "the bot's reply")
        assert "Not started: this build would pass the monthly Jobs budget" in text
        assert "of the $0.00 budget is spent this month" in text and "resets on " in text
        assert store.jobs.list(repo=repo) == []
        store.close()
    finally:
        _forget(e2e_hub, poor)
