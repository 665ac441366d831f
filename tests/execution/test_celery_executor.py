"""The Celery executor's promises that need no worker: the broker URL stays secret, a broker that does not
answer leaves jobs queued in the store, a host without a GPU must say its SM, and the delivery rules hold.

Workers, Redis and PostgreSQL together run in tests/e2e/test_e2e_celery.py.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.execution.celery_transport import CeleryTransport
from bot.execution.orchestrator import Orchestrator
from bot.host.celery_app import make_app
from bot.hub import Hub
from bot.publishing.staged import StagedPublisher
from bot.settings import load_settings
from builders.spec import BuildError, BuildSpec, EngineSettings, Manifest, TaskResult, utcnow
from state import JobStatus, Store

PASSWORD = "s3cret-broker-pass"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once it is closed


@pytest.fixture
def down_executor(tmp_path: Path, store: Store, hubsim) -> Iterator[Orchestrator]:
    settings = load_settings(
        None, data_dir=tmp_path, hf_endpoint=hubsim.url, hf_token=hubsim.token,
        broker_url=f"redis://:{PASSWORD}@127.0.0.1:{_closed_port()}/0",
    )  # fmt: skip
    hub = Hub(endpoint=hubsim.url, token=hubsim.token)
    yield Orchestrator(settings, store, StagedPublisher(hub, settings), CeleryTransport(make_app(settings)))


def test_the_broker_url_is_never_shown(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("QUANTBOT_BROKER_URL", f"redis://:{PASSWORD}@broker.example:6379/0")
    monkeypatch.setenv("QUANTBOT_DATA_DIR", str(tmp_path))
    settings = load_settings(None)
    assert settings.broker() == f"redis://:{PASSWORD}@broker.example:6379/0"
    for text in (repr(settings), str(settings.redacted())):
        assert PASSWORD not in text
    shown = CliRunner().invoke(cli, ["config"])
    assert shown.exit_code == 0 and "broker_url" in shown.output and PASSWORD not in shown.output


def test_a_broker_that_does_not_answer_leaves_the_job_queued(down_executor: Orchestrator, tmp_path) -> None:
    spec = BuildSpec(repo_id="alice/m", revision="a" * 40, format="gptq", target_sms=[90],
                     work_dir=tmp_path / "w", output_dir=tmp_path / "o")  # fmt: skip
    job, _ = down_executor.store.jobs.enqueue("key-1", spec.model_dump(mode="json"), repo="alice/m")
    down_executor.poll()
    down_executor.poll()
    assert down_executor.store.jobs.get(job.id).status is JobStatus.QUEUED
    assert down_executor.store.jobs.get(job.id).attempts == 0
    assert down_executor.store.tasks.of_job(job.id) == []


def test_a_host_without_a_gpu_must_say_its_sm() -> None:
    done = CliRunner().invoke(cli, ["worker"])
    assert done.exit_code != 0
    assert "no NVIDIA GPU" in str(done.exception) and "--sm" in str(done.exception)


def test_tasks_travel_as_json_acknowledged_late_one_at_a_time(tmp_path: Path) -> None:
    conf = make_app(load_settings(None, data_dir=tmp_path)).conf
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    assert conf.result_accept_content == ["json"]
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    longest_stage = EngineSettings().timeout_s
    assert conf.broker_transport_options["visibility_timeout"] > longest_stage


def _manifest(status: str, *kinds: str) -> Manifest:
    errors = [BuildError(stage="fetch", kind=kind, message="503") for kind in kinds]
    return Manifest(started_at=utcnow(), status=status, errors=errors)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("result", "waits"),
    [
        (TaskResult(manifest=_manifest("failed", "hub_unavailable")), True),
        (TaskResult(manifest=_manifest("succeeded"), hub_failed=True), True),  # staging the checkpoint
        (TaskResult(manifest=_manifest("failed", "no_safetensors")), False),
    ],
)
def test_a_quantize_task_the_hub_failed_waits_for_another_try(
    down_executor: Orchestrator, tmp_path: Path, result: TaskResult, waits: bool
) -> None:
    store = down_executor.store
    store.jobs.enqueue("key-h", {"format": "gptq", "target_sms": [90]}, repo="alice/m")
    job = store.lifecycle.claim_build(down_executor.owner, 60)
    assert job is not None
    task = store.tasks.add(job.id, "qb-1", kind="quantize", queue="quantize")
    failed = result.model_copy(update={"ok": False, "error": "fetch: 503", "worker": "gpu-1"})
    down_executor._succeeded(job, task, failed)
    after = store.jobs.get(job.id)
    if waits:  # back in the queue, sent again once its time has come
        assert after.status is JobStatus.QUEUED and after.retry_at is not None
        assert after.error == "fetch: 503 (on gpu-1)"
    else:
        assert after.status is JobStatus.FAILED and after.retry_at is None
