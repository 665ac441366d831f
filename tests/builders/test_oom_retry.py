"""The CUDA OOM policy of calibration: retry once with half the batch, then fail with both sizes named.

Run in-process with torch's real OutOfMemoryError class (this machine has no GPU to exhaust); the
end-to-end path through a worker is in test_bad_input.py.
"""

from __future__ import annotations

import io
from typing import Any

import pytest

from builders.context import BuildContext, with_oom_retry
from builders.failures import BuildFailure
from builders.progress import Reporter
from builders.spec import BuildSpec, Device

pytestmark = pytest.mark.slow  # imports torch


@pytest.fixture
def ctx(tmp_path: Any) -> BuildContext:
    spec = BuildSpec(local_dir=tmp_path, format="fp8", work_dir=tmp_path / "w", output_dir=tmp_path / "o")
    return BuildContext(spec, Reporter(io.StringIO()), Device(kind="cpu", name="test"))


def oom(times: int) -> tuple[list[tuple[int, int]], Any]:
    import torch

    calls: list[tuple[int, int]] = []

    def attempt(batch: int, number: int) -> str:
        calls.append((batch, number))
        if len(calls) <= times:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return "model"

    return calls, attempt


def test_one_oom_is_retried_with_half_the_batch(ctx: BuildContext) -> None:
    calls, attempt = oom(1)
    assert with_oom_retry(ctx, 8, attempt) == ("model", 4, 1)
    assert calls == [(8, 0), (4, 1)]
    assert "retrying with 4" in ctx.reporter._stream.getvalue()


def test_a_second_oom_fails_the_build(ctx: BuildContext) -> None:
    calls, attempt = oom(2)
    with pytest.raises(BuildFailure, match="batch size 8 and again at 4") as failure:
        with_oom_retry(ctx, 8, attempt)
    assert failure.value.kind == "cuda_oom" and not failure.value.bad_input
    assert calls == [(8, 0), (4, 1)]


def test_batch_one_has_nothing_smaller_to_try(ctx: BuildContext) -> None:
    calls, attempt = oom(1)
    with pytest.raises(BuildFailure, match="batch size 1"):
        with_oom_retry(ctx, 1, attempt)
    assert calls == [(1, 0)]


def test_other_errors_are_not_retried(ctx: BuildContext) -> None:
    def attempt(batch: int, number: int) -> None:
        raise ValueError("shape mismatch")

    with pytest.raises(ValueError, match="shape mismatch"):
        with_oom_retry(ctx, 8, attempt)
