"""Release text built from data: runtime rows and snippets (runtimes.yaml), the artifact tree, licence file
names, and the scan for traces of the build machine."""

from __future__ import annotations

import pytest

from bot.eligibility.matrices import load_runtimes
from bot.publishing.layout import layout_tree
from bot.publishing.portable import machine_traces
from bot.publishing.usage import detection_rules, runnable_snippet, runs_with, usages
from builders.invariance import is_licence_file

REPO = "quantbot/tiny-GPTQ"


@pytest.mark.parametrize("fmt", ["fp8", "int8_sq", "int4_awq", "w4a8_awq", "nvfp4", "gptq"])
def test_snippets_only_for_runtimes_that_load_the_format(fmt: str) -> None:
    loaders = [r.id for r, _ in load_runtimes().loaders(fmt)]
    assert [u.runtime for u in usages(fmt, REPO)] == loaders
    assert [row["loads"] for row in runs_with(fmt)].count("yes") == len(loaders)
    assert set(detection_rules(fmt)) == set(loaders)


def test_gptq_snippets_let_vllm_pick_marlin_and_transformers_runs_on_cpu() -> None:
    by_runtime = {u.runtime: u for u in usages("gptq", REPO)}
    assert 'LLM(model="quantbot/tiny-GPTQ")' in by_runtime["vllm"].code
    assert "quantization=" not in by_runtime["vllm"].code
    assert "optimum" in by_runtime["transformers"].install
    chosen = runnable_snippet("gptq", REPO)
    assert chosen is not None and (chosen.runtime, chosen.needs_gpu) == ("transformers", False)


def test_int8_sq_is_advised_only_for_trtllm_build() -> None:
    (only,) = usages("int8_sq", REPO)
    assert only.runtime == "trtllm_build" and "trtllm-build --checkpoint_dir" in only.code
    assert runnable_snippet("int8_sq", REPO) is None


def test_layout_tree_lists_the_files_given() -> None:
    tree = layout_tree(
        [
            "config.json",
            "model.safetensors",
            "trt-llm/engines/sm90_trt-llm-1.2_cuda12.9/rank0.engine",
            "LICENSE",
        ]
    )
    assert tree.splitlines() == [
        "LICENSE",
        "config.json",
        "model.safetensors",
        "trt-llm/",
        "  engines/",
        "    sm90_trt-llm-1.2_cuda12.9/",
        "      rank0.engine",
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("LICENSE", True),
        ("LICENSE.txt", True),
        ("license.md", True),
        ("USE_POLICY.md", True),
        ("NOTICE", True),
        ("LICENSES/x", False),
        ("config.json", False),
        ("README.md", False),
    ],
)
def test_licence_file_names(name: str, expected: bool) -> None:
    assert is_licence_file(name) is expected


def test_machine_traces() -> None:
    text = (
        "see https://hf.co/a/b and `trt-llm/engines/x/` on H100/H200; built in /tmp/pytest-of-alice/build/out"
    )
    assert machine_traces(text, names=["buildhost"]) == ["/tmp/pytest-of-alice/build/out"]
    assert machine_traces("made on buildhost", names=["buildhost"]) == ["buildhost"]
    assert machine_traces("sm89/sm90+ Ampere / Hopper", names=[]) == []
