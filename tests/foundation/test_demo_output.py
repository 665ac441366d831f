"""The demo never goes quiet: a line at least every few seconds, and a bar per build stage on a terminal."""

from __future__ import annotations

import io
import time
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


def test_without_a_terminal_each_change_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    with demo._StageBars(3) as bars:
        for _ in range(3):
            bars.show("running", 0.1, "load: loading")
        bars.show("built", 1.0, "built")
    assert capsys.readouterr().out.splitlines() == [
        "    job 3: running ·  10% · load: loading",
        "    job 3: built · 100% · built",
    ]
