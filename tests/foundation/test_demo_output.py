"""The demo never goes quiet while it works (a line at least every few seconds, a bar per build stage on a
terminal, finished stages drawn finished), and once it is over says what to open, once."""

from __future__ import annotations

import io
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bot.commands import demo


def test_the_clock_speaks_when_nothing_else_did(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    clock = demo._Clock()
    monkeypatch.setattr(demo._Clock, "QUIET_S", 0.6)
    clock.doing("making the tiny Llama")
    clock.start()
    time.sleep(1.5)
    clock.doing("making the tiny Llama")  # the same thing again: its clock keeps counting
    time.sleep(0.8)
    clock.stop()
    said = capsys.readouterr().out.splitlines()
    assert said and all(line.startswith("    … making the tiny Llama (") for line in said)
    assert said[-1] != "    … making the tiny Llama (0 s)"


def test_a_bar_per_stage_filled_within_the_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = io.StringIO()
    screen.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.setattr(demo.sys, "stdout", screen)
    with demo._StageBars(7) as bars:
        bars.show("running", 2.5 / 7, "quantize: calibrating: layer 1/2, batch 4/8")  # half of stage 3 of 7
        bars.show("running", 3.2 / 7, "export: copying")
    text = screen.getvalue()
    assert "job 7 quantize" in text and " 50% " in text and "batch 4/8" in text
    assert "job 7 export" in text and " 20% " in text


def test_a_stage_the_job_left_is_drawn_finished(monkeypatch: pytest.MonkeyPatch) -> None:
    """Progress is sampled: a job seen at 0% of quantize and then in export finished quantize meanwhile,
    and a job seen at 40% of validate and then published finished validate."""
    screen = io.StringIO()
    screen.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.setattr(demo.sys, "stdout", screen)
    with demo._StageBars(7) as bars:
        bars.show("running", 2.0 / 7, "quantize: started")
        bars.show("running", 3.1 / 7, "export: copying")
        bars.show("running", 5.4 / 7, "validate: perplexity")
    drawn = {stage: _last_percent(screen.getvalue(), stage) for stage in ("quantize", "export", "validate")}
    assert drawn == {"quantize": 100, "export": 100, "validate": 100}


def test_a_failed_stage_stays_drawn_where_it_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = io.StringIO()
    screen.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.setattr(demo.sys, "stdout", screen)
    with pytest.raises(demo.DemoError), demo._StageBars(7) as bars:
        bars.show("running", 2.4 / 7, "quantize: calibrating")
        raise demo.DemoError("job 7 ended failed")
    assert _last_percent(screen.getvalue(), "quantize") == 40


def _last_percent(screen: str, stage: str) -> int:
    """The percentage a stage's bar was last drawn at (tqdm redraws a bar in place with `\\r`)."""
    draws = [d for d in screen.replace("\n", "\r").split("\r") if f"job 7 {stage} " in d]
    return int(draws[-1].split("%")[0].split()[-1])


def _finished_demo(executor: str) -> Any:
    finished = demo._Demo(Path("/unused"), 0, executor)
    finished.hubsim = SimpleNamespace(url="http://127.0.0.1:8765")
    finished.server = SimpleNamespace(url="http://127.0.0.1:40001")
    finished.releases = ["http://127.0.0.1:8765/quantbot/tiny-llama-GPTQ"]
    return finished


def test_the_summary_says_what_to_open_and_how_to_use_the_local_hub() -> None:
    finished = _finished_demo("local")
    lines = finished.summary().splitlines()
    assert "  the local Hub (hubsim)  http://127.0.0.1:8765/" in lines
    assert "  a release               http://127.0.0.1:8765/quantbot/tiny-llama-GPTQ" in lines
    assert "  the bot's status page   http://127.0.0.1:40001/" in lines
    assert any(line.startswith(f"  alice's token           {finished.alice_token}") for line in lines)
    assert f"  export HF_ENDPOINT=http://127.0.0.1:8765 HF_TOKEN={finished.alice_token}" in "\n".join(lines)
    assert lines[-1] == "Press Ctrl+C to stop." and "Jobs" not in "\n".join(lines)


def test_the_jobs_demo_says_alices_token_opens_the_job_pages() -> None:
    summary = _finished_demo("hf-jobs").summary()
    assert f"  the bot's Jobs          http://127.0.0.1:8765/jobs/{demo.JOBS_NAMESPACE}" in summary
    assert "the bot and alice: sign in with alice's token" in summary
