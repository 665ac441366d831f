"""What a `quantbot worker` runs: the quantize task and the engine task, each around a build process.

Each task runs its build the way a local build runs (`bot.launcher.launch.Worker`: `python -m
builders …` in a process of its own, `CUDA_VISIBLE_DEVICES` set to this worker's GPU), so a CUDA crash or
an OOM ends that build and nothing else; the build dies with the task (`die_with_parent`). The process is
a warm spare when the worker has one for its toolchain (`bot.host.spares`): torch, transformers and
the toolchain already imported while the worker was idle. While it runs
the task reports its stage as the Celery state `PROGRESS` every `beat_s` seconds; the bot reads that from the
result backend, records it, and takes a task whose reports stop for a dead worker.

- quantize: builds and validates the checkpoint (no engines: those are the engine tasks'), then uploads
  it to the release's draft PR (`bot.publishing.staged`); returns the manifest and the draft's pinned
  revision, or the release the Hub already has;
- engine: downloads the checkpoint at that revision, builds this SM's engine (or records why not) with
  `python -m builders engine`, uploads `trt-llm/engines/<label>/` to the same PR, runs the SM's serving check
  (the release loaded by repo id at that revision, `bot.publishing.serving`), and returns the records.

Both return JSON (with the worker's name and queue), never raise for a failed build: the bot records
the failure. A task the bot fenced (`celery_app.fence`) returns at once without doing anything.
"""

from __future__ import annotations

import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery, Task
from huggingface_hub import snapshot_download

from bot.errors import HubError, transient
from bot.host.celery_app import ENGINE_TASK, PROGRESS, QUANTIZE_TASK, fenced
from bot.host.spares import Spares
from bot.hub import Hub
from bot.launcher.launch import Worker, failure_reason, read_manifest
from bot.publishing.serving import requests_json, serving_requests
from bot.publishing.staged import StagedPublisher
from bot.settings import Settings
from builders.spec import (
    BuildSpec,
    EngineOutcome,
    EngineRecord,
    Progress,
    StagedCheckpoint,
    TaskReport,
    TaskRequest,
    TaskResult,
)

STOP_GRACE_S = 10.0
ENGINE_RECORD = "engine.json"  # what `python -m builders engine` writes (builders.engine_step.RECORD_NAME)
BUILD_LOG = "worker.log"  # the build process's stderr, in its work dir


@dataclass(frozen=True)
class Place:
    """Where this worker is: its settings (broker, Hub, data dir), Celery node name, GPU environment."""

    settings: Settings
    name: str
    env: dict[str, str]

    @property
    def host(self) -> str:
        return socket.gethostname()


_place: Place | None = None
_spares: Spares | None = None


def register(app: Celery, place: Place) -> None:
    """Register both tasks on `app`, for a worker at `place`."""
    global _place
    _place = place
    app.task(name=QUANTIZE_TASK, bind=True)(quantize)
    app.task(name=ENGINE_TASK, bind=True)(engine)


def quantize(task: Task, request: dict[str, Any]) -> dict[str, Any]:
    """Build the checkpoint and put it in the release's draft PR (a `TaskRequest` in, a `TaskResult` out)."""
    return _quantize(task, TaskRequest.model_validate(request)).model_dump(mode="json")


def engine(task: Task, request: dict[str, Any]) -> dict[str, Any]:
    """Build one SM's engine from the checkpoint in the draft PR and add it to that PR."""
    return _engine(task, TaskRequest.model_validate(request)).model_dump(mode="json")


def _quantize(task: Task, request: TaskRequest) -> TaskResult:
    place = _here()
    where = _where(task, place)
    if fenced(task.app, task.request.id):
        return where.model_copy(update={"skipped": "revoked before it started"})
    if request.repo_id is None:
        return where.model_copy(update={"ok": False, "error": "the quantize task names no release repo"})
    build = _localised(request.spec, place, "quantize", target_sms=[])
    log_path = Path(build.work_dir) / BUILD_LOG
    code = _run(task, place, build, log_path, request.beat_s)
    manifest = read_manifest(build)
    report = where.model_copy(update={"manifest": manifest})
    if manifest is None or not manifest.ok:
        return report.model_copy(update={"ok": False, "error": failure_reason(manifest, code, log_path)})
    _report(task, place, "publish", 0.9, "uploading the checkpoint to the release's draft PR", 0)
    try:
        staged = _publisher(place).stage(Path(build.output_dir), request.repo_id)
    except HubError as e:  # the bot decides: the Hub's failures wait for another try, others fail the job
        error = f"staging the checkpoint failed: {e}"
        return report.model_copy(update={"ok": False, "error": error, "hub_failed": transient(e)})
    if isinstance(staged, StagedCheckpoint):
        return report.model_copy(update={"draft": staged})
    return report.model_copy(update={"final": staged})


def _engine(task: Task, request: TaskRequest) -> TaskResult:
    place = _here()
    sm = request.sm
    report = _where(task, place)
    if fenced(task.app, task.request.id):
        return report.model_copy(update={"skipped": "revoked before it started"})
    if sm is None or request.draft is None:
        return report.model_copy(update={"ok": False, "error": "an engine task needs an SM and a draft"})
    pinned = request.draft
    build = _localised(request.spec, place, f"sm{sm}")
    checkpoint, out = Path(build.work_dir) / "checkpoint", Path(build.output_dir)
    _report(task, place, "engines", 0.0, f"sm{sm}: downloading the checkpoint at {pinned.revision[:12]}", 0)
    settings = place.settings
    hub = Hub(endpoint=settings.hf_endpoint, token=settings.token())
    hub.call(
        snapshot_download,
        pinned.repo_id,
        revision=pinned.revision,
        allow_patterns=request.files,
        local_dir=str(checkpoint),
        endpoint=settings.hf_endpoint,
        token=settings.token(),
        repo_id=pinned.repo_id,
    )
    spec_path, serving = Path(build.work_dir) / "spec.json", Path(build.work_dir) / "serving.json"
    serving.write_text(requests_json(serving_requests(build, pinned.repo_id, pinned.revision, [sm])))
    argv = ["engine", str(spec_path), "--sm", str(sm), "--checkpoint", str(checkpoint), "--out", str(out)]
    argv += ["--serving", str(serving)]
    log_path = Path(build.work_dir) / BUILD_LOG
    code = _run(task, place, build, log_path, request.beat_s, argv=argv)
    try:
        done = EngineOutcome.model_validate_json((out / ENGINE_RECORD).read_text())
    except (OSError, ValueError):
        reason = failure_reason(None, code, log_path)
        return report.model_copy(update={"record": EngineRecord(sm=sm, status="failed", reason=reason)})
    record, path = done.record, done.record.path
    if record.status == "built" and path is not None:
        revision = _publisher(place).engine_revision(pinned)
        if revision is None:
            why = "the release's PR was closed before it"
            record = record.model_copy(update={"status": "not_built", "reason": why})
        else:
            hub.upload_folder(
                pinned.repo_id,
                out / path,
                path_in_repo=path,
                revision=revision,
                commit_message=f"Upload {path}",
                commit_description=f"Engine for sm{sm}",
            )
    return report.model_copy(update={"record": record, "artifacts": done.artifacts, "serving": done.serving})


# ------------------------------------------------------------------------------------------------ helpers


def warm_up() -> None:
    """In the pool process, before its first task and after each: the spares import while it is idle."""
    _slot().fill()


def cool_down() -> None:
    """The pool process is ending: its idle spares end with it."""
    if _spares is not None:
        _spares.close()


def _slot() -> Spares:
    """This pool process's build slot (one build at a time, and its spares)."""
    global _spares
    if _spares is None:
        place = _here()
        _spares = Spares(place.settings, place.env)
    return _spares


def _here() -> Place:
    if _place is None:
        raise RuntimeError("the quantbot tasks run only in `quantbot worker` (register() was not called)")
    return _place


def _where(task: Task, place: Place) -> TaskResult:
    """Who ran the task: the worker's node name, its host and the queue the task came from."""
    queue = (task.request.delivery_info or {}).get("routing_key")
    return TaskResult(worker=place.name, host=place.host, queue=queue)


def _localised(spec: BuildSpec, place: Place, part: str, **changes: Any) -> BuildSpec:
    """The bot's spec with this worker's folders (the bot's paths mean nothing on this machine)."""
    base = _builds(place.settings) / f"{spec.key()[:24]}-{part}"
    return spec.model_copy(
        update={"work_dir": base / "work", "output_dir": base / "out", "cache_dir": None} | changes
    )


def _builds(settings: Settings) -> Path:
    return Path(settings.data_dir) / "builds"


def build_logs(settings: Settings) -> list[Path]:
    """The build processes' logs under this data dir (a Job's fresh one holds its one task's)."""
    return sorted(_builds(settings).glob(f"*/work/{BUILD_LOG}"))


def _publisher(place: Place) -> StagedPublisher:
    settings = place.settings
    return StagedPublisher(Hub(endpoint=settings.hf_endpoint, token=settings.token()), settings)


def _report(task: Task, place: Place, stage: str, progress: float, message: str, beat: int) -> None:
    where = _where(task, place)
    report = TaskReport(
        stage=stage, progress=progress, message=message, beat=beat, worker=where.worker, queue=where.queue
    )
    task.update_state(state=PROGRESS, meta=report.model_dump(mode="json"))


def _run(
    task: Task, place: Place, build: BuildSpec, log_path: Path, beat_s: float, argv: list[str] | None = None
) -> int:
    """Run the build process to its end, reporting progress every `beat_s` and on each new stage."""
    worker = _slot().start(build, log_path, argv)
    last: Progress | None = None
    beat, beat_at = 0, 0.0
    try:
        while True:
            exited = worker.exit_code is not None
            news = worker.progress()
            stage_changed = bool(news) and (last is None or news[-1].stage != last.stage)
            last = news[-1] if news else last
            if stage_changed or time.monotonic() - beat_at >= beat_s:
                beat, beat_at = beat + 1, time.monotonic()
                stage, overall = (last.stage, last.overall) if last else ("fetch", 0.0)
                _report(task, place, stage, overall, last.message if last else "starting", beat)
            if exited:
                return worker.process.wait()
            time.sleep(0.25)
    finally:
        _stop(worker)


def _stop(worker: Worker) -> None:
    """End a build still running when its task ends early (revoked and terminated, or a worker shutdown)."""
    if worker.exit_code is not None:
        return
    worker.signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while worker.exit_code is None and time.monotonic() < deadline:
        time.sleep(0.1)
    worker.signal(signal.SIGKILL)
