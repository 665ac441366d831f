"""`quantbot build MODEL --format F` with nothing else: the default calibration set comes from the Hub
(hubsim's stand-in here), the KV cache is FP8 where TensorRT-LLM's matrices say so, and a calibration set
that cannot be read fails in seconds, before the model is fetched, with one message naming --calib."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from bot.commands.build import CPU_CALIBRATION, _has_gpu
from bot.hubsim.datasets import calibration_rows
from builders.spec import DEFAULT_CALIBRATION, Manifest

pytestmark = pytest.mark.slow


def test_a_build_with_every_default_succeeds_against_hubsim(builder: Any, calibration_dataset: str) -> None:
    done = builder.cli("defaults-fp8", builder.upstream.repo_id, "--format", "fp8")
    assert done.returncode == 0, done.stderr[-3000:]
    m = Manifest.read(builder.root / "defaults-fp8" / "out" / "manifest.json")
    c = m.quantization.calibration
    assert (c.dataset, c.source, c.revision, c.split, c.seed) == (
        DEFAULT_CALIBRATION,
        "hub",
        calibration_dataset,
        "train",
        None,
    )
    # ModelOpt's 512 samples of 512 tokens on a GPU; without one, the CPU's size (about a minute here)
    samples, seq_len = (512, 512) if _has_gpu("auto") else tuple(CPU_CALIBRATION.values())
    rows = len(calibration_rows())
    assert (c.samples_requested, c.samples, c.seq_len) == (samples, min(rows, samples), seq_len)
    if rows < samples:
        assert c.samples_note == f"split 'train' of {DEFAULT_CALIBRATION} has only {rows} rows with text"
    # FP8 KV cache by default: the matrices mark it for llama on the default target SMs
    assert m.quantization.kv_cache_quant_algo == "FP8"
    assert m.quantization.kv_cache_reason.startswith("fp8 by default: TensorRT-LLM's matrices mark")
    assert m.validation.ok


def test_kv_cache_none_turns_the_default_off(builder: Any) -> None:
    q = builder.built("fp8").manifest.quantization  # built with --kv-cache none
    assert q.kv_cache_quant_algo is None
    assert q.kv_cache_reason == "not quantized: turned off by --kv-cache none"


def test_an_unreadable_calibration_set_fails_fast_and_once(builder: Any) -> None:
    started = time.monotonic()
    done = builder.cli(
        "bad-calib", builder.upstream.repo_id, "--format", "fp8", "--calib", "nobody/no-such-dataset"
    )
    took = time.monotonic() - started
    assert done.returncode == 2
    output = done.stdout + done.stderr
    assert output.count("could not be read") == 1 and "Traceback" not in output
    assert "--calib" in done.stderr and "'bundled'" in done.stderr
    m = Manifest.read(builder.root / "bad-calib" / "out" / "manifest.json")
    assert (m.errors[0].stage, m.errors[0].kind) == ("fetch", "calibration_unavailable")
    assert m.stage("load").status == "pending" and m.source.files == []  # the model was never fetched
    assert took < 60, took  # the CLI and worker start-up (imports) included


def test_bundled_text_says_why_it_gives_fewer_samples(builder: Any, tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    from builders.calibration import load_calibration
    from builders.spec import Recipe

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    calib = load_calibration(Recipe(calib_dataset="bundled"), tokenizer, {})
    record = calib.record(batch_size=1, oom_retries=0)
    assert record["samples_requested"] == 512 and record["samples"] < 512
    assert record["samples_note"] == f"calibration.txt holds only {record['samples']} windows of 512 tokens"
