"""`quantbot build` talks while it works: a bar on a terminal, elsewhere a line per stage and at least every
few seconds; while the builder counts its calibration steps, how many are done and about how long is left."""

from __future__ import annotations

import io
import time
from typing import Any

import pytest

from bot.commands import build
from builders.spec import Progress


def _line(stage: str, message: str, **counts: int) -> Progress:
    return Progress(stage=stage, fraction=0.5, message=message, **counts)


def test_without_a_terminal_a_line_per_stage_then_one_every_few_seconds(
    monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    clock = [100.0]
    monkeypatch.setattr(build.time, "monotonic", lambda: clock[0])
    talk = build._Talk(tty=False)
    talk(_line("fetch", "started"))
    talk(_line("load", "started"))
    talk(_line("load", "loading the base model"))  # the same stage: no line of its own
    for _ in range(25):  # 25 quiet seconds, a heartbeat each second
        clock[0] += 1.0
        talk.heartbeat()
    talk(_line("quantize", "started"))  # news of its own, though the words are load's first
    assert capsys.readouterr().err.splitlines() == [
        "[fetch] started",
        "[load] started",
        f"[load {build.QUIET_S:.0f} s] loading the base model",
        f"[load {2 * build.QUIET_S:.0f} s] … loading the base model",  # no news: said as such
        "[quantize] started",
    ]


def test_counted_calibration_says_its_steps_and_the_time_left(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(build.time, "monotonic", lambda: clock[0])
    talk = build._Talk(tty=False)
    talk(_line("quantize", "calibrating: layer 1/4, module group 1/4", step=0, steps=16))
    assert talk.describe(talk.latest) == "calibrating: layer 1/4, module group 1/4 · step 0/16"  # type: ignore[arg-type]
    clock[0] += 30.0
    talk(_line("quantize", "quantizing: layer 2/4, module group 2/4", step=6, steps=16))
    said = talk.describe(talk.latest)  # type: ignore[arg-type]
    assert said == "quantizing: layer 2/4, module group 2/4 · step 6/16 · about 50 s left"  # 5 s a step


def test_on_a_terminal_the_bar_shows_the_steps_and_the_time_left(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = io.StringIO()
    monkeypatch.setattr(build.sys, "stderr", screen)
    with build._Talk(tty=True) as talk:
        talk(_line("quantize", "calibration pass 1, batch 1/64", step=1, steps=64))
        time.sleep(0.2)
        talk(_line("quantize", "calibration pass 1, batch 9/64", step=9, steps=64))
        time.sleep(1.2)  # the bar is redrawn every second, so its clock moves
    drawn = screen.getvalue().replace("\r", "\n")
    assert "quantize" in drawn and "batch 9/64 · step 9/64 · about " in drawn and " left" in drawn
