"""The orchestrator over the local transport, on a real store with real worker processes: what a worker
says and leaves becomes the job's status, a cancel stops the process, a shutdown lets the stage in hand
finish and gives the job back, a restarted bot takes over a dead one's builders, and a build the Hub failed
waits in the queue for its next try.

The workers are short Python scripts speaking the worker protocol (`builders.spec.Progress` lines on stdout,
the manifest in the output dir, the exit code), started through `worker_command` as a container command
would be; the real builder runs in tests/e2e and tests/builders.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.execution.local import LocalTransport
from bot.execution.orchestrator import Orchestrator
from bot.execution.slots import CPU_NICE, Slot
from bot.hub import Hub
from bot.launcher import launch
from bot.launcher.launch import PID_FILE
from bot.publishing.staged import StagedPublisher
from bot.settings import Settings, load_settings
from builders.spec import BuildSpec
from state import BuildChange, JobStatus, Store, TaskState
from state.lifecycle import TRANSIENT, retrying

PRELUDE = """
import json, sys, time
spec = json.load(open(sys.argv[-1]))
def say(stage, fraction, message=""):
    print(json.dumps({"stage": stage, "fraction": fraction, "message": message}), flush=True)
def manifest(status, errors=()):
    with open(spec["output_dir"] + "/manifest.json", "w") as f:
        json.dump({"status": status, "started_at": "2025-01-01T00:00:00Z", "errors": list(errors)}, f)
"""
BUILDS = (
    PRELUDE
    + """
say("fetch", 0.5, "config.json"); say("quantize", 0.5, "layer 1 of 2"); manifest("succeeded")
"""
)
FAILS_WITH_MANIFEST = (
    PRELUDE
    + """
say("fetch", 1.0); manifest("failed", [{"stage": "load", "kind": "no_safetensors", "message": "no weights"}])
sys.exit(1)
"""
)
DIES = (
    PRELUDE
    + """
say("fetch", 0.2); print("Segmentation fault in libfoo", file=sys.stderr, flush=True); sys.exit(3)
"""
)
HANGS = (
    PRELUDE
    + """
say("quantize", 0.1); time.sleep(120)
"""
)


def _local(settings: Settings, store: Store, owner: str | None = None, slots: int = 1) -> Orchestrator:
    """The orchestrator over CPU slots (`owner`: the lease holder's name, e.g. a dead bot's)."""
    transport = LocalTransport(
        settings, [Slot("cpu")] if slots == 1 else [Slot(f"cpu{i}") for i in range(slots)]
    )
    transport.owner = owner or transport.owner
    publisher = StagedPublisher(
        Hub(endpoint="http://127.0.0.1:9"), settings
    )  # never asked: built, not published
    return Orchestrator(settings, store, publisher, transport, poll_s=0.05)


@pytest.fixture
def executor(store: Store, tmp_path: Path) -> Iterator[Callable[..., Orchestrator]]:
    made: list[Orchestrator] = []

    def make(
        script: str, shutdown_grace_s: float = 0.0, owner: str | None = None, slots: int = 1
    ) -> Orchestrator:
        path = tmp_path / f"worker{len(made)}.py"
        path.write_text(script)
        command = [sys.executable, str(path)]
        settings = load_settings(
            None,
            data_dir=tmp_path,
            worker_command=command,
            lease_s=20,
            shutdown_grace_s=shutdown_grace_s,
            namespace="bot",
        )
        made.append(_local(settings, store, owner, slots))
        return made[-1]

    yield make
    for executor in made:
        executor.stop(timeout=20)


def _queue(store: Store, tmp_path: Path, name: str = "m") -> int:
    model = tmp_path / name
    model.mkdir(exist_ok=True)
    spec = BuildSpec(
        local_dir=model,
        format="gptq",
        work_dir=tmp_path / f"{name}-work",
        output_dir=tmp_path / f"{name}-out",
    )
    Path(spec.output_dir).mkdir(parents=True, exist_ok=True)
    return store.jobs.enqueue(spec.key(), spec.model_dump(mode="json"), repo=name, label=name)[0].id


def _poll_until(executor: Orchestrator, done: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the executor did not get there"
        executor.poll()
        time.sleep(0.05)


def test_a_build_that_succeeds_is_built_with_its_manifest_and_progress(executor, store, tmp_path) -> None:
    job_id = _queue(store, tmp_path)
    heard: list[BuildChange] = []
    store.changes.listen(heard.append)
    ex = executor(BUILDS)
    _poll_until(ex, lambda: store.jobs.get(job_id).status is JobStatus.BUILT)
    job = store.jobs.get(job_id)
    assert job.manifest["status"] == "succeeded" and job.progress == 1.0 and job.attempts == 1
    assert [(c.status, c.before) for c in heard if c.moved] == [
        (JobStatus.RUNNING, JobStatus.QUEUED), (JobStatus.BUILT, JobStatus.RUNNING),
    ]  # fmt: skip
    assert "quantize" in {c.stage for c in heard if not c.moved}  # progress reached the store's listeners
    assert not (tmp_path / "m-work" / PID_FILE).exists() and not ex.busy()


def test_a_failed_build_says_why_from_its_manifest(executor, store, tmp_path) -> None:
    job_id = _queue(store, tmp_path)
    ex = executor(FAILS_WITH_MANIFEST)
    _poll_until(ex, lambda: store.jobs.get(job_id).status is JobStatus.FAILED)
    job = store.jobs.get(job_id)
    assert job.error == "load: no weights" and job.manifest["errors"][0]["kind"] == "no_safetensors"


def test_a_worker_that_dies_without_a_manifest_is_failed_with_its_last_words(
    executor, store, tmp_path
) -> None:
    job_id = _queue(store, tmp_path)
    ex = executor(DIES)
    _poll_until(ex, lambda: store.jobs.get(job_id).status is JobStatus.FAILED)
    assert store.jobs.get(job_id).error == (
        "the builder stopped (exit code 3) without a manifest: Segmentation fault in libfoo"
    )


def test_a_worker_command_that_cannot_start_fails_the_job_not_the_executor(store, tmp_path) -> None:
    job_id = _queue(store, tmp_path)
    settings = load_settings(
        None, data_dir=tmp_path, worker_command=[str(tmp_path / "no-such-python")], namespace="bot"
    )
    ex = _local(settings, store)
    ex.poll()
    job = store.jobs.get(job_id)
    assert job.status is JobStatus.FAILED and job.error.startswith("could not start the build: ")
    assert not ex.busy()


def test_a_cancel_heard_from_the_store_stops_the_process(executor, store, tmp_path) -> None:
    job_id = _queue(store, tmp_path)
    ex = executor(HANGS)
    ex.start()  # listening to the store from now on
    deadline = time.monotonic() + 30
    while (tmp_path / "m-work" / PID_FILE).exists() is False or store.jobs.get(job_id).progress == 0:
        assert time.monotonic() < deadline, "the build did not start"
        time.sleep(0.05)
    pid = int((tmp_path / "m-work" / PID_FILE).read_text().split()[0])
    assert store.lifecycle.cancel(job_id, note="cancelled by command") is not None  # what /cancel does
    while ex.busy():
        assert time.monotonic() < deadline, "the cancelled build kept running"
        time.sleep(0.05)
    assert store.jobs.get(job_id).status is JobStatus.CANCELLED  # left alone once the process ended
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_shutdown_gives_the_running_job_back_to_the_queue(executor, store, tmp_path) -> None:
    job_id = _queue(store, tmp_path)
    ex = executor(HANGS).start()
    deadline = time.monotonic() + 30
    while store.jobs.get(job_id).status is not JobStatus.RUNNING:
        assert time.monotonic() < deadline, "the build did not start"
        time.sleep(0.05)
    ex.stop(timeout=20)
    job = store.jobs.get(job_id)
    assert job.status is JobStatus.QUEUED and job.lease_owner is None  # the next start resumes it
    assert store.jobs.history(job_id)[-1].note == "bot shutting down"


STAGE_THEN_HANGS = (
    PRELUDE
    + """
import os
def record(stage):
    os.makedirs(spec["work_dir"] + "/stages", exist_ok=True)
    with open(spec["work_dir"] + f"/stages/{stage}.json", "w") as f:
        json.dump({"name": stage, "status": "succeeded"}, f)
say("quantize", 0.1, "calibrating")
while not os.path.exists(spec["output_dir"] + "/../go"):
    time.sleep(0.05)
record("quantize"); say("quantize", 1.0, "done"); say("export", 0.0, "started")
time.sleep(120)
"""
)


def test_a_shutdown_lets_the_stage_in_hand_finish_then_requeues(executor, store, tmp_path) -> None:
    job_id = _queue(store, tmp_path)
    ex = executor(STAGE_THEN_HANGS, shutdown_grace_s=60).start()
    _wait(lambda: "calibrating" in (store.jobs.get(job_id).progress_message or ""), "the calibration")
    stopping = threading.Thread(target=ex.stop)
    stopping.start()
    time.sleep(1.0)
    assert store.jobs.get(job_id).status is JobStatus.RUNNING  # the calibration goes on through the stop
    (tmp_path / "go").write_text("")  # ...and ends
    stopping.join(30)
    job = store.jobs.get(job_id)
    assert job.status is JobStatus.QUEUED and store.jobs.history(job_id)[-1].note == "bot shutting down"
    assert json.loads((tmp_path / "m-work" / "stages" / "quantize.json").read_text())["status"] == "succeeded"


@pytest.mark.parametrize(("grace", "drain"), [(0.5, True), (600, False)])  # past the grace; Ctrl+C
def test_a_shutdown_stops_a_stage_that_outlasts_the_grace_or_at_once_on_ctrl_c(
    executor, store, tmp_path, grace: float, drain: bool
) -> None:
    job_id = _queue(store, tmp_path)
    ex = executor(STAGE_THEN_HANGS, shutdown_grace_s=grace).start()
    _wait(lambda: "calibrating" in (store.jobs.get(job_id).progress_message or ""), "the calibration")
    started = time.monotonic()
    ex.stop(drain=drain)
    assert time.monotonic() - started < 15  # the grace, then SIGTERM
    assert store.jobs.get(job_id).status is JobStatus.QUEUED


# -------------------------------------------------------------------- builders outlive the bot, CPU slot

SLOW_BUILD = (
    PRELUDE
    + """
import os
open(spec["work_dir"] + f"/started-{os.getpid()}", "w").close()
say("quantize", 0.1, "calibrating")
time.sleep(float(open(spec["output_dir"] + "/../hold").read()))
say("quantize", 1.0); manifest("succeeded")
"""
)
HUB_DOWN = (
    PRELUDE
    + """
manifest("failed", [{"stage": "fetch", "kind": "hub_unavailable", "message": "could not download: 503"}])
sys.exit(1)
"""
)
REPORTS_PRIORITY = (
    PRELUDE
    + """
import os
group = open("/proc/self/autogroup").read().split()[-1] if os.path.exists("/proc/self/autogroup") else None
with open(spec["output_dir"] + "/priority.json", "w") as f:
    json.dump({"nice": os.nice(0), "threads": os.environ.get("OMP_NUM_THREADS"), "group": group}, f)
manifest("succeeded")
"""
)


def _dead_bot() -> str:
    """The lease holder's name of a local bot process of this host that no longer exists."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    return f"{socket.gethostname()}:{dead.pid}:local"


def _pid(ex: Orchestrator) -> int:
    """The pid of the one build `ex`'s local transport runs."""
    assert isinstance(ex.transport, LocalTransport)
    [run] = ex.transport._runs.values()
    return run.worker.pid


def _dies(ex: Orchestrator) -> None:
    """The bot dies: nothing of it tends the build any more, its builder runs on."""
    assert isinstance(ex.transport, LocalTransport)
    ex.transport._runs.clear()


def _wait(done: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_restarted_bot_re_attaches_to_the_builder_a_dead_bot_left_running(
    executor, store, tmp_path
) -> None:
    job_id = _queue(store, tmp_path)
    (tmp_path / "hold").write_text("3")
    first = executor(SLOW_BUILD, owner=_dead_bot())
    _poll_until(first, lambda: store.jobs.get(job_id).progress > 0)  # calibrating
    pid = _pid(first)
    _dies(first)

    second = executor(SLOW_BUILD).start()
    assert second.busy() and _pid(second) == pid  # the same process, not a new one
    job = store.jobs.get(job_id)
    assert job.status is JobStatus.RUNNING and job.lease_owner == second.owner
    assert store.jobs.history(job_id)[-1].note == f"re-attached to builder pid {pid}"
    built = lambda: any(e.to_status is JobStatus.BUILT for e in store.jobs.history(job_id))  # noqa: E731
    _wait(built, "the adopted build to finish")  # (then published by the publish step: not this test's)
    job = store.jobs.get(job_id)
    assert job.attempts == 1 and job.manifest["status"] == "succeeded"  # built once, never restarted
    assert not (tmp_path / "m-work" / PID_FILE).exists()


def test_cancelling_an_adopted_build_stops_its_process(executor, store, tmp_path) -> None:
    job_id = _queue(store, tmp_path)
    (tmp_path / "hold").write_text("120")
    first = executor(SLOW_BUILD, owner=_dead_bot())
    _poll_until(first, lambda: store.jobs.get(job_id).progress > 0)
    pid = _pid(first)
    _dies(first)
    second = executor(SLOW_BUILD).start()
    assert _pid(second) == pid
    store.lifecycle.cancel(job_id, note="cancelled by command")
    _wait(lambda: not second.busy(), "the cancelled build to stop")
    assert launch.start_time(pid) is None and store.jobs.get(job_id).status is JobStatus.CANCELLED


def test_a_pid_file_naming_another_process_is_not_adopted(tmp_path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "builders", "spec.json"])
    try:
        started = launch.start_time(other.pid)
        (work / PID_FILE).write_text(f"{other.pid}\n{work}/spec.json\n{started}\n{work}/p\n")
        assert launch.Worker.adopt(work) is None  # its command line does not run this spec
        (work / PID_FILE).write_text(f"{other.pid}\nspec.json\n{int(started) - 1}\n{work}/p\n")
        assert launch.Worker.adopt(work) is None  # a reused pid: another start time
        (work / PID_FILE).write_text(f"{other.pid}\nspec.json\n{started}\n{work}/p\n")
        assert launch.Worker.adopt(work) is not None
    finally:
        other.kill()
        other.wait()


def test_a_build_the_hub_failed_waits_in_the_queue_and_a_permanent_failure_fails(
    executor, store, tmp_path
) -> None:
    job_id = _queue(store, tmp_path)
    _poll_until(executor(HUB_DOWN), lambda: store.jobs.get(job_id).retry_at is not None)
    job = store.jobs.get(job_id)
    assert store.jobs.history(job_id)[-1].note.startswith(f"{TRANSIENT}: retrying at ")
    assert job.retry_at is not None and job.retry_at > job.updated_at  # not claimed before then
    assert job.status is JobStatus.QUEUED and retrying(job).endswith("attempt 2")
    assert "could not download: 503" in (job.error or "")
    assert store.lifecycle.claim_build("w", 60) is None  # waiting: no slot takes it yet
    permanent = _queue(store, tmp_path, "other")
    _poll_until(executor(FAILS_WITH_MANIFEST), lambda: store.jobs.get(permanent).status is JobStatus.FAILED)
    assert store.jobs.history(permanent)[-1].note is None


def test_the_cpu_slot_builds_at_lower_priority_with_a_core_left_to_the_bot(executor, store, tmp_path) -> None:
    job_id = _queue(store, tmp_path)
    _poll_until(executor(REPORTS_PRIORITY), lambda: store.jobs.get(job_id).status is JobStatus.BUILT)
    seen = json.loads((tmp_path / "m-out" / "priority.json").read_text())
    assert seen["nice"] == os.nice(0) + CPU_NICE
    assert seen["threads"] == str(max(1, len(os.sched_getaffinity(0)) - 1))
    if Path("/proc/self/autogroup").exists():  # its session's group yields to the bot's session too
        assert seen["group"] == str(CPU_NICE)


def test_a_job_waits_queued_while_the_one_slot_builds_then_builds(executor, store, tmp_path) -> None:
    (tmp_path / "hold").write_text("1")
    first, second = _queue(store, tmp_path, "a"), _queue(store, tmp_path, "b")
    ex = executor(SLOW_BUILD)
    _poll_until(ex, lambda: store.jobs.get(first).progress > 0)
    ex.poll()
    assert store.jobs.get(second).status is JobStatus.QUEUED  # not sent, not bounced: it waits for the slot
    assert [e.to_status for e in store.jobs.history(second)] == [JobStatus.QUEUED]
    _poll_until(ex, lambda: store.jobs.get(second).status is JobStatus.BUILT)
    assert store.jobs.get(first).status is JobStatus.BUILT
    assert [e.to_status for e in store.jobs.history(second)][-2:] == [JobStatus.RUNNING, JobStatus.BUILT]


def test_a_job_sent_again_while_its_builder_runs_follows_that_builder(executor, store, tmp_path) -> None:
    job_id = _queue(store, tmp_path)
    (tmp_path / "hold").write_text("2")
    ex = executor(SLOW_BUILD, slots=2)  # a free slot takes the job again at once
    _poll_until(ex, lambda: store.jobs.get(job_id).progress > 0)
    store.lifecycle.give_back(job_id, ex.owner, "its lease lapsed")  # as housekeeping does with a stalled bot
    _poll_until(ex, lambda: store.jobs.get(job_id).status is JobStatus.BUILT)
    tasks = store.tasks.of_job(job_id)
    assert [(t.attempt, t.state) for t in tasks] == [(1, TaskState.REVOKED), (2, TaskState.SUCCEEDED)]
    assert "no longer followed" in (tasks[0].message or "")
    assert store.jobs.get(job_id).attempts == 2
    assert len(list((tmp_path / "m-work").glob("started-*"))) == 1  # one builder, not two
