"""The TensorRT-LLM card template against the seed's filled example, and its parameters against the publisher.

The seed README says the example was captured as rendered text: HTML tags, indentation inside the code block
and most blank lines are gone, so both sides are compared with tags stripped, lines trimmed and blank lines
dropped. Its metadata lacks `base_model_relation: quantized`, which the publishing issue requires; the
rendered metadata must be the example's plus that one key.
"""

from __future__ import annotations

import re

import pytest
import yaml

from bot.publishing.cards import TRTLLM_TEMPLATE
from bot.publishing.rendering import render_card
from tests.publishing.example_card import EXAMPLE_PARAMETERS, FILLED_EXAMPLE


def split_card(text: str) -> tuple[dict, list[str]]:
    """Front matter as data; body as the seed README says to compare it (no tags, no blank lines)."""
    match = re.match(r"\A---\n(.*?)\n---\n(.*)\Z", text, re.S)
    assert match, "card has no front matter"
    lines = (re.sub(r"<[^>]+>", "", line).strip() for line in match.group(2).splitlines())
    return yaml.safe_load(match.group(1)), [line for line in lines if line]


# Seed lines that are not true of a build (issue 10): unmeasured adjectives, TensorRT-LLM credited with the
# quantization, a GPU list naming cards the format does not run on, a layout the build may not have, and a
# format-wide GPU minimum ("≥ 9.0" claims Blackwell, which runs no INT4-AWQ; issue 17): the GPU lines come
# from the runtime table instead.
DROPPED = (
    "- **High-Performance Inference**: Optimized for NVIDIA GPUs with TensorRT-LLM",
    "- **Production Ready**: Built for low-latency, high-throughput chat serving",
    "| **TensorRT-LLM Version** | `1.2.0rc5` (used for quantization) |",
    "- **Engines**: Hardware-specific (rebuild for different GPU/CUDA versions/SMs, e.g., "
    "H100/H200/B200/Blackwell, L40S, 4090/RTX)",
    "*.safetensors",
    "- **GPU**: NVIDIA with Compute Capability ≥ 9.0 (Hopper / H100)",
)


# Seed lines rewritten to be true of the build: the tool that quantized (and "an INT4-AWQ", not the seed's
# "a"), the tree of the files uploaded (here an example checkpoint without the seed's folders),
# troubleshooting for the runtimes that load the format.
REWRITTEN = (
    "This is a INT4-AWQ quantized version of https://huggingface.co/TheDrummer/Magidonia-24B-v4.3, optimized "
    "for TensorRT-LLM inference.",
    "trt-llm/",
    "checkpoints/",
    "engines/sm90_trt-llm-1.2.0rc5_cuda13.0/",
    "rank*.engine",
    "- **Checkpoints**: Portable across systems with compatible TensorRT-LLM versions; rebuild engines on "
    "the target GPU",
    "2. Download an engine matching your GPU from the `engines/` subdirectories",
    "Reduce `max_batch_size` or `max_seq_len` when building the engine.",
    "Adjust `kv_cache_config.free_gpu_memory_fraction` at runtime.",
)


def test_the_example_parameters_keep_the_seed_lines_that_are_true_and_drop_the_others() -> None:
    expected_meta, expected_body = split_card(FILLED_EXAMPLE.read_text(encoding="utf-8"))
    rendered_meta, rendered_body = split_card(render_card(TRTLLM_TEMPLATE, EXAMPLE_PARAMETERS))

    kept = [line for line in expected_body if line not in DROPPED and not line.startswith("- **INT4-AWQ")]
    missing = [line for line in kept if line not in rendered_body]
    assert missing == list(REWRITTEN)
    assert not any(line in rendered_body for line in DROPPED)
    assert "| **Quantized With** | ModelOpt 0.41.0 |" in rendered_body
    assert rendered_meta == {**expected_meta, "base_model_relation": "quantized"}
    # the seed's first line, verbatim but for the article and the tool that quantized
    assert (
        "This is an INT4-AWQ quantized version of https://huggingface.co/TheDrummer/Magidonia-24B-v4.3, "
        "quantized with ModelOpt 0.41.0." in rendered_body
    )
    # where it runs, per runtime and from the runtime table: the seed's engine, and no Blackwell GPU
    assert (
        "- **GPU (TensorRT-LLM (PyTorch backend))**: sm80, sm86, sm87, sm89, sm90: Ampere, Ada Lovelace and "
        "Hopper GPUs (e.g. A100, L40S, RTX 4090, H100, H200)" in rendered_body
    )
    assert (
        "- **GPU (engines in this release)**: sm90 only (built on NVIDIA H100 NVL, Hopper)" in rendered_body
    )
    gpu_lines = [line for line in rendered_body if line.startswith("- **GPU")]
    assert len(gpu_lines) == 2 and not [line for line in gpu_lines if "B200" in line or "Blackwell" in line]


def test_a_missing_parameter_is_an_error_not_a_blank() -> None:
    from jinja2 import UndefinedError

    incomplete = {k: v for k, v in EXAMPLE_PARAMETERS.items() if k != "gpu_name"}
    with pytest.raises(UndefinedError):
        render_card(TRTLLM_TEMPLATE, incomplete)


def test_unknown_values_leave_their_rows_out() -> None:
    unknown = dict.fromkeys(("gpu_name", "sm_arch", "max_batch_size", "tensorrt_llm_version", "cuda_toolkit"))
    _, body = split_card(render_card(TRTLLM_TEMPLATE, {**EXAMPLE_PARAMETERS, **unknown}))

    labels = ("**GPU** |", "**SM Architecture**", "**Max Batch Size**", "**TensorRT-LLM Version**", "**CUDA")
    for label in labels:
        assert not any(label in line for line in body), label
    assert not any("None" in line for line in body)
