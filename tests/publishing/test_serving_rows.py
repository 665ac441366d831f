"""The serving check as the bot asks for it and shows it: each SM's request holds the runtimes of the table
that load the format there (and that the check can drive), and the card's "Tested on" rows give figures only
for what ran, a CPU run labelled as one."""

from __future__ import annotations

from pathlib import Path

from bot.publishing.serving import serving_requests, serving_rows
from builders.spec import BuildSpec
from tests.publishing.example_card import serving_records

SHA = "a" * 40


def _spec(fmt: str) -> BuildSpec:
    return BuildSpec(
        repo_id="org/model", revision="b" * 40, format=fmt, work_dir=Path("w"), output_dir=Path("o")
    )


def test_each_sm_asks_the_runtimes_that_load_the_format_there() -> None:
    sm80, sm90 = serving_requests(_spec("fp8"), "bot/model-FP8", SHA, [80, 90])
    assert (sm80.sm, sm80.repo_id, sm80.revision) == (80, "bot/model-FP8", SHA)
    assert [r.id for r in sm80.runtimes] == ["vllm"]  # SGLang and TensorRT-LLM need sm89 for FP8
    # TGI runs as a container and trtllm-build is the engine step: neither is a serving check's runtime
    assert [r.id for r in sm90.runtimes] == ["vllm", "sglang", "trtllm_pytorch"]
    [gptq] = serving_requests(_spec("gptq"), "bot/model-GPTQ", SHA, [90])
    assert [(r.id, r.cpu) for r in gptq.runtimes] == [
        ("vllm", False),
        ("sglang", False),
        ("transformers", True),
    ]
    [int8] = serving_requests(_spec("int8_sq"), "bot/model-INT8", SHA, [90])
    assert int8.runtimes == []  # an engine, built where TensorRT-LLM ≤ 1.2 is installed
    assert gptq.prompt == "The future of AI is"  # the card's


def test_tested_on_rows_show_figures_only_for_what_ran() -> None:
    gpu, not_run, cpu, failed = serving_rows(serving_records(SHA))
    assert (gpu.gpu, gpu.sm, gpu.runtime, gpu.loads, gpu.tokens_per_s, gpu.load_s, gpu.memory) == (
        "NVIDIA H100 80GB HBM3",
        "sm90",
        "vLLM 0.34.0",
        "yes",
        "128.0",
        "41.2 s",
        "3.00 GiB",
    )
    assert (not_run.loads, not_run.tokens_per_s, not_run.load_s, not_run.memory) == (
        "not run: vLLM is not installed on this worker",
        "—",
        "—",
        "—",
    )
    assert (cpu.gpu, cpu.sm, cpu.runtime, cpu.tokens_per_s, cpu.memory) == (
        "none: CPU (AMD EPYC)",
        "sm89 task, run on CPU",
        "transformers 5.14.1 (CPU)",
        "8.0 (CPU, transformers)",
        "—",
    )
    assert failed.loads == "no: RuntimeError: a \\| b"  # a table cell keeps its pipes escaped
