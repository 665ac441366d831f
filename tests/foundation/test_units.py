"""Sizes and counts in units a person reads (`quantbot plan`, the planner's reasons)."""

from __future__ import annotations

import pytest

from bot import units


@pytest.mark.parametrize(
    ("n", "text"),
    [(426_624, "426.6K"), (7_241_732_096, "7.2B"), (1_500_000, "1.5M"), (950, "950"), (0, "0")],
)
def test_count(n: int, text: str) -> None:
    assert units.count(n) == text


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (853_248, "0.8 MiB"),
        (80 * 1024**3, "80.0 GiB"),
        (2048, "2.0 KiB"),
        (12, "12 B"),
        (150 * 1024**2, "150.0 MiB"),
        (104.4 * 1024**3, "104.4 GiB"),
    ],
)
def test_size(n: int, text: str) -> None:
    assert units.size(n) == text
