"""Release text built from data: runtime rows and snippets (runtimes.yaml), the artifact tree, licence file
names, and the scan for traces of the build machine."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.eligibility.facts import build_facts
from bot.eligibility.matrices import load_runtimes
from bot.publishing.layout import layout_tree
from bot.publishing.portable import machine_traces
from bot.publishing.usage import (
    IMAGE_PROMPT,
    IMAGE_URL,
    detection_rules,
    runnable_snippet,
    runs_with,
    usages,
)
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


def test_int8_sq_is_advised_only_for_trtllm_build_and_shows_how_to_run_the_engine() -> None:
    (only,) = usages("int8_sq", REPO)
    assert only.runtime == "trtllm_build"
    lines = only.code.splitlines()
    build = lines.index(
        "trtllm-build --checkpoint_dir release/trt-llm/checkpoints --output_dir engine --gemm_plugin auto"
    )
    # after the build, TensorRT-LLM's engine runner generates with that engine and the checkpoint's tokenizer
    assert lines[build + 1] == "python - <<'EOF'" and lines[-1] == "EOF"
    assert "from tensorrt_llm._tensorrt_engine import LLM  # the TensorRT engine runner" in lines
    assert 'llm = LLM(model="engine", tokenizer="release/trt-llm/checkpoints")' in lines
    assert runnable_snippet("int8_sq", REPO) is None


def test_chat_snippets_prompt_through_the_chat_template() -> None:
    chat = {u.runtime: u.code for u in usages("gptq", REPO, chat=True)}
    plain = {u.runtime: u.code for u in usages("gptq", REPO)}
    assert set(chat) == set(plain)
    assert "apply_chat_template(" in chat["transformers"]
    assert "apply_chat_template" not in plain["transformers"]
    assert "llm.chat(messages" in chat["vllm"] and "llm.generate([" in plain["vllm"]
    assert "/v1/chat/completions" in chat["sglang"] and "/v1/completions" in plain["sglang"]
    assert "/v1/chat/completions" in chat["tgi"] and "/generate" in plain["tgi"]
    (engine,) = usages("int8_sq", REPO, chat=True)
    assert 'AutoTokenizer.from_pretrained("release/trt-llm/checkpoints").apply_chat_template(' in engine.code
    assert runnable_snippet("gptq", REPO, chat=True).code == chat["transformers"]


def test_a_vision_language_models_snippets_ask_about_an_image() -> None:
    """vLLM and TGI (fp8) send an image with the question; transformers, where it loads the format, goes
    through the upstream's auto class and processor; a causal LM's snippets are unchanged."""
    vlm = build_facts(
        {
            "architectures": ["Qwen2_5_VLForConditionalGeneration"],
            "model_type": "qwen2_5_vl",
            "text_config": {"model_type": "qwen2_5_vl_text"},
            "vision_config": {"depth": 32},
        },
        name="org/vlm",
        source="local",
    )
    image = f'{{"type": "image_url", "image_url": {{"url": "{IMAGE_URL}"}}}}'
    codes = {u.runtime: u.code for u in usages("fp8", REPO, chat=True, family=vlm)}
    assert set(codes) == {"vllm", "tgi"}
    assert all(image in code and IMAGE_PROMPT in code for code in codes.values())
    assert "llm.chat(messages" in codes["vllm"] and "/v1/chat/completions" in codes["tgi"]
    transformers = next(
        u for u in usages("gptq", REPO, family=replace(vlm, gptqmodel=True)) if u.module == "transformers"
    )
    assert "AutoModelForImageTextToText.from_pretrained(model_id" in transformers.code
    assert "processor.apply_chat_template(" in transformers.code and IMAGE_URL in transformers.code
    assert all(IMAGE_URL not in u.code for u in usages("fp8", REPO, chat=True))


def test_an_fp8_release_is_advised_for_tgi_in_the_image_the_table_read() -> None:
    tgi = {u.runtime: u for u in usages("fp8", REPO)}["tgi"]
    assert "ghcr.io/huggingface/text-generation-inference:3.3.7" in tgi.code and "3.3.7" in tgi.install
    assert detection_rules("fp8")["tgi"][0] == {
        "file": "config.json",
        "key": "quantization_config.quant_method",
        "values": ["modelopt"],
    }


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
