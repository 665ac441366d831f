"""A worker's warm spares: a build handed to a spare runs in that process (its imports already paid), with
its progress, its log and its exit code as a cold build has them; a build a spare cannot take (another
environment, a `worker_command`) starts cold; a signal to a warm build's group ends it.

The builds are real `python -m builders engine` runs on an empty checkpoint (recorded "not built": no
legacy checkpoint here), the quickest real builder command: its spare imports torch only.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from bot.host.spares import Spares, warm
from bot.launcher.launch import Worker
from bot.settings import Settings, load_settings
from builders.spec import BuildSpec
from builders.warm import READY


def _engine(root: Path) -> tuple[BuildSpec, list[str], Path]:
    spec = BuildSpec(
        repo_id="alice/tiny", revision="0" * 40, format="gptq", target_sms=[90],
        work_dir=root / "work", output_dir=root / "out",
    )  # fmt: skip
    checkpoint = root / "checkpoint"
    checkpoint.mkdir(parents=True)
    argv = ["engine", str(root / "work" / "spec.json"), "--sm", "90", "--checkpoint", str(checkpoint)]
    return spec, [*argv, "--out", str(root / "out")], root / "worker.log"


def _settings(tmp_path: Path, **values: object) -> Settings:
    return load_settings(None, data_dir=tmp_path / "data", warm_toolchains=["engine"], **values)


def _finish(worker: Worker) -> tuple[int, list[str]]:
    stages: list[str] = []
    code = worker.wait(lambda p: stages.append(p.message))
    return code, stages


def _idle_pid(spares: Spares) -> int:
    return spares._idle["engine"].process.pid


def test_a_build_handed_to_a_warm_spare_runs_in_it_with_progress_log_and_exit(tmp_path: Path) -> None:
    spares = Spares(_settings(tmp_path), {"CUDA_VISIBLE_DEVICES": ""})
    spares.fill()
    spare = _idle_pid(spares)
    deadline = time.monotonic() + 60
    while not warm(tmp_path / "data", "engine") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert warm(tmp_path / "data", "engine"), "the spare imported torch before any build came"
    spec, argv, log = _engine(tmp_path / "b1")
    try:
        worker = spares.start(spec, log, argv)
        assert worker.pid == spare, "the build ran in the spare, not in a new process"
        code, messages = _finish(worker)
        assert code == 0
        assert messages[0] == "engine for sm90" and messages[-1].startswith("sm90: not built")
        record = json.loads((tmp_path / "b1" / "out" / "engine.json").read_text())
        assert record["record"]["status"] == "not_built"
        assert not list((tmp_path / "data" / "builds" / "warm").glob("*.log")), "its warm log moved"
        assert f"{READY} torch" in log.read_text(), "the build's log says what was imported before it"
        spares.fill()
        assert _idle_pid(spares) != spare, "a used spare is replaced by a fresh process, never reused"
    finally:
        spares.close()


def test_a_signal_to_a_warm_build_ends_it_and_the_next_build_of_another_environment_starts_cold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spares = Spares(_settings(tmp_path), {"CUDA_VISIBLE_DEVICES": ""})
    spares.fill()
    spec, argv, log = _engine(tmp_path / "b1")
    try:
        worker = spares.start(spec, log, argv)
        worker.signal(signal.SIGKILL)  # what a cancel ends with: the whole group
        assert worker.process.wait(10) == -signal.SIGKILL
        spares.fill()
        stale = spares._idle["engine"]
        monkeypatch.setenv("QUANTBOT_SPARES_TEST", "changed")  # the spare was started with another env
        spec, argv, log = _engine(tmp_path / "b2")
        cold = spares.start(spec, log, argv)
        assert cold.pid != stale.process.pid and stale.process.poll() is not None, "stale spare ended"
        assert "QUANTBOT_SPARES_TEST=changed" in Path(f"/proc/{cold.pid}/environ").read_text(errors="replace")
        cold.signal(signal.SIGKILL)
        cold.process.wait(10)
    finally:
        spares.close()


def test_no_spare_under_a_worker_command_every_build_starts_as_configured(tmp_path: Path) -> None:
    stamp = ["/bin/sh", "-c", 'echo "$@" > "$0.args"', str(tmp_path / "ran")]
    spares = Spares(_settings(tmp_path, worker_command=stamp), {})
    spares.fill()
    assert spares._idle == {}
    spec, argv, log = _engine(tmp_path / "b1")
    worker = spares.start(spec, log, argv)
    assert worker.process.wait(10) == 0
    assert (tmp_path / "ran.args").read_text().split()[:3] == ["-m", "builders", "engine"]
    assert os.path.exists(tmp_path / "b1" / "work" / "spec.json")
