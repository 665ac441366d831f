"""Targets: SM parsing, SM → family, local GPUs' SMs, configured SMs and memory."""

from __future__ import annotations

import pytest

from bot.eligibility.targets import GIB, GPU, parse_sms, resolve_targets, target_for
from bot.errors import UnknownSM, UsageError


@pytest.mark.parametrize(
    ("text", "sms"),
    [("90", [90]), ("90,89", [90, 89]), (" sm90 , sm_120 ", [90, 120]), ("90,90,80", [90, 80])],
)
def test_parse_sms(text: str, sms: list[int]) -> None:
    assert parse_sms(text) == sms


@pytest.mark.parametrize("text", ["", "90,", "hopper", "9", "90.0", "sm-90"])
def test_parse_sms_rejects_junk(text: str) -> None:
    with pytest.raises(UsageError, match="--sm"):
        parse_sms(text)


@pytest.mark.parametrize("sm", [75, 70, 101, 999])
def test_unknown_sm_is_a_clear_error(sm: int) -> None:
    with pytest.raises(
        UnknownSM, match=f"unknown SM {sm}: the hardware matrix places only 80, 86, 87, 89, 90"
    ):
        target_for(sm)


def test_no_gpu_and_no_sm_plans_for_the_configured_sms_and_says_so() -> None:
    result = resolve_targets(None, default_sms=[80, 89, 90, 100, 120], gpus=[])
    assert [t.sm for t in result.targets] == [80, 89, 90, 100, 120]
    assert result.notes == (
        "no GPU found and no --sm given: planning for the configured SMs 80, 89, 90, 100, 120",
    )
    assert all(t.memory_bytes is None and t.gpus == () for t in result.targets)


def test_local_gpus_plus_remote_sms() -> None:
    h100 = GPU(0, "NVIDIA H100 80GB HBM3", 90, 80 * GIB)
    t4 = GPU(1, "Tesla T4", 75, 16 * GIB)
    result = resolve_targets(
        None, remote_sms=[89, 90], default_sms=[80], gpus=[t4, h100], memory_gib={89: 24.0}
    )
    assert [t.sm for t in result.targets] == [90, 89]
    local, remote = result.targets
    assert (local.family, local.gpu_name, local.memory_bytes, local.memory_source) == (
        "Hopper",
        h100.name,
        80 * GIB,
        "local GPU",
    )
    assert (remote.family, remote.gpu_name, remote.memory_bytes, remote.memory_source) == (
        "Ada Lovelace",
        None,
        24 * GIB,
        "configured",
    )
    assert result.notes == ("GPU 1 (Tesla T4, sm75) is in no family of the hardware matrix; ignored",)


def test_sm_override_wins_and_keeps_local_gpu_figures() -> None:
    h100 = GPU(0, "NVIDIA H100 80GB HBM3", 90, 80 * GIB)
    result = resolve_targets([100, 90], remote_sms=[89], gpus=[h100])
    assert [(t.sm, t.hardware_row, t.gpu_name) for t in result.targets] == [
        (100, "Blackwell(sm100)", None),
        (90, "Hopper", "NVIDIA H100 80GB HBM3"),
    ]
    assert result.notes == ()


def test_unknown_sm_in_configuration_is_an_error() -> None:
    with pytest.raises(UnknownSM):
        resolve_targets(None, remote_sms=[75], gpus=[])
