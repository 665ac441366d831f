"""The seed's filled TensorRT-LLM card and the parameters it shows, shared by the card tests."""

from __future__ import annotations

from pathlib import Path

from bot.publishing.gpus import engine_cell, examples, gpu_lines
from bot.publishing.layout import layout_tree
from bot.publishing.scope import Scope
from bot.publishing.usage import runs_with, usages, wrong_loaders
from builders.spec import ServingRecord

EXAMPLE_SOURCE = "https://huggingface.co/TheDrummer/Magidonia-24B-v4.3"

# A verbatim copy of ../shared/seeds/trtllm-card-filled-example.md, so the test runs from a clean clone.
FILLED_EXAMPLE = Path(__file__).parent / "data" / "trtllm-card-filled-example.md"

# The parameters the filled example shows, under the names bot/publishing/cards.py gives them (every key the
# template reads; None = not shown in the example, so left out).
EXAMPLE_PARAMETERS = {
    "metadata": {
        "license": "other",
        "license_name": "other",
        "license_link": EXAMPLE_SOURCE,
        "base_model": "TheDrummer/Magidonia-24B-v4.3",
        "base_model_relation": "quantized",
        "tags": ["tensorrt-llm", "quantized", "int4_awq", "4-bit"],
        "language": ["en"],
        "pipeline_tag": "text-generation",
    },
    "model_name": "TheDrummer/Magidonia-24B-v4.3",
    "quant_method_upper": "INT4-AWQ",
    "source_model_link": EXAMPLE_SOURCE,
    "w_bit": 4,
    "kv_cache_dtype": "int8",
    "kv_cache_type": "paged",
    "kv_reuse": "enabled",
    "group_size": 128,
    "tensorrt_llm_version": "1.2.0rc5",
    "modelopt_version": None,
    "max_batch_size": 64,
    "max_input_len": 5525,
    "max_output_len": 150,
    "sm_arch": "sm90",
    "gpu_name": "NVIDIA H100 NVL",
    "cuda_toolkit": "13.0",
    "quantized_on": None,
    "build_time": None,
    "generated_at": "2026-01-03 18:54:59 UTC",
    "engines": [{"label": "sm90_trt-llm-1.2.0rc5_cuda13.0"}],
    "engine_note": None,
    "artifact_sizes": [],
    "calib_dataset": None,
    "calib_size": 64,
    "calib_note": None,
    "calib_seqlen": 5675,
    "awq_block_size": 128,
    "calib_batch_size": 16,
    "validation": None,
    "engine_gpu": "sm90 only (built on NVIDIA H100 NVL, Hopper)",
    "quant_portability_note": (
        "INT4-AWQ checkpoints are portable across sm89/sm90+ GPUs; rebuild engines for the target GPU (e.g., "
        "H100/H200/B200/Blackwell, L40S, 4090/RTX) or reuse one of the prebuild engines in case they match "
        "your GPU."
    ),
    "manifest_file": None,
    "license_display": "other",
    "license_link": EXAMPLE_SOURCE,
    "gated_note": None,
    # Sections issue 10 adds (not in the seed's example).
    "legacy_checkpoint": None,
    "quant_algo": "W4A16_AWQ",
    "quantized_with": "ModelOpt 0.41.0",
    "verification_line": None,
    "tested_on": [],
    "tested_revision": "",
    "tested_tokens": 32,
    "runs_with": runs_with("int4_awq"),
    "wrong_loaders": wrong_loaders("int4_awq"),
    "producer_notes": [],
    "gpu_lines": gpu_lines("int4_awq"),
    "quantized_scope": Scope(
        quantized="the linear layers of every decoder block (attention and MLP projections): weights in INT4 "
        "(AWQ, one scale per group of 128 input channels), activations in 16 bits",
        not_quantized="`lm_head`, the token embeddings, the normalization layers",
    ),
    "runtime_table_label": "Runtime support table",
    "usages": usages("int4_awq", "example/Magidonia-24B-v4.3-INT4-AWQ"),
    "layout": layout_tree(["config.json", "hf_quant_config.json", "model.safetensors"]),
    "licence_files": [],
    "example_gpus": examples(engine_cell("int4_awq")),
}


def serving_records(revision: str) -> list[ServingRecord]:
    """Serving checks as per-SM tasks record them: vLLM measured on an H100, vLLM not installed on the sm89
    worker, transformers measured on that worker's CPU, SGLang failing with a pipe in its message."""
    release = {"repo_id": "bot/model-GPTQ", "revision": revision}
    vllm = {"runtime": "vllm", "runtime_name": "vLLM"}
    return [
        ServingRecord(
            sm=90,
            version="0.34.0",
            status="passed",
            device="cuda",
            gpu="NVIDIA H100 80GB HBM3",
            device_sm=90,
            load_s=41.2,
            generate_s=0.25,
            new_tokens=32,
            tokens_per_s=128.0,
            peak_gpu_memory_bytes=3 * 2**30,
            **vllm,
            **release,
        ),
        ServingRecord(
            sm=89, status="not_run", reason="vLLM is not installed on this worker", **vllm, **release
        ),
        ServingRecord(
            sm=89,
            runtime="transformers",
            runtime_name="transformers",
            version="5.14.1",
            status="passed",
            device="cpu",
            gpu="AMD EPYC",
            load_s=2.0,
            generate_s=4.0,
            new_tokens=32,
            tokens_per_s=8.0,
            **release,
        ),
        ServingRecord(
            sm=89,
            runtime="sglang",
            runtime_name="SGLang",
            version="0.5.23",
            status="failed",
            reason="RuntimeError: a | b",
            **release,
        ),
    ]
