"""Every format built end to end on CPU from the hubsim upstream, read back file by file.

The expectations here come from the formats themselves (FP8 is one byte per weight, 4-bit formats pack
two weights per byte, GPTQ packs 32/bits weights per int32), not from the builder's own checks.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from buildkit import host_leaks
from safetensors import safe_open

pytestmark = pytest.mark.slow

MODELOPT_UNIFIED = ["fp8", "int4_awq", "w4a8_awq"]
# q_proj of layer 0 in the tiny Llama is [128 out, 128 in] in bf16.
Q_PROJ = {
    "fp8": ("model.layers.0.self_attn.q_proj.weight", "F8_E4M3", [128, 128]),
    "int4_awq": ("model.layers.0.self_attn.q_proj.weight", "U8", [64, 128]),
    "w4a8_awq": ("model.layers.0.self_attn.q_proj.weight", "U8", [64, 128]),
    "nvfp4": ("model.layers.0.self_attn.q_proj.weight", "U8", [128, 64]),
    # int8_sq's legacy checkpoint fuses q (128 rows), k (64) and v (64) into one int8 qkv matrix
    "int8_sq": ("transformer.layers.0.attention.qkv.weight", "I8", [256, 128]),
    # 4-bit GPTQ: 128 inputs / 8 per int32 = 16 rows, one column per output
    "gptq": ("model.layers.0.self_attn.q_proj.qweight", "I32", [16, 128]),
}
ALGO = {
    "fp8": "FP8",
    "int4_awq": "W4A16_AWQ",
    "w4a8_awq": "W4A8_AWQ",
    "nvfp4": "NVFP4",
    "int8_sq": "W8A8_SQ_PER_CHANNEL",
}
SUCCEEDING = ["fp8", "int4_awq", "w4a8_awq", "int8_sq", "gptq"]


def tensor(folder: Path, name: str) -> tuple[str, list[int]]:
    for file in folder.glob("*.safetensors"):
        with safe_open(file, framework="pt") as f:
            if name in f.keys():  # noqa: SIM118 (safe_open has no __contains__)
                sl = f.get_slice(name)
                return sl.get_dtype(), list(sl.get_shape())
    raise AssertionError(f"{name} not in {folder}")


def checkpoint(result: Any) -> Path:
    return result.out / result.manifest.quantization.checkpoint


@pytest.mark.parametrize("fmt", SUCCEEDING)
def test_build_succeeds_with_a_complete_manifest(builder: Any, fmt: str) -> None:
    result = builder.built(fmt)
    assert result.returncode == 0, result.stderr[-3000:]
    m = result.manifest
    assert m.status == "succeeded" and not m.errors
    assert m.key == result.spec.key()
    assert m.source.chat_template is True  # the Llama-3-style upstream has one: its cards prompt through it
    assert [s.name for s in m.stages] == [
        "fetch",
        "load",
        "quantize",
        "export",
        "engines",
        "validate",
        "manifest",
    ]
    assert all(s.status in ("succeeded", "skipped") for s in m.stages)
    for stage in m.stages[:-1]:
        assert stage.wall_s is not None and stage.peak_rss_bytes and stage.peak_rss_bytes > 50 * 2**20
        assert stage.cuda_peak_bytes is None  # CPU machine
    assert m.toolchain.python and m.toolchain.torch and m.toolchain.transformers
    assert m.toolchain.gptqmodel if fmt == "gptq" else m.toolchain.modelopt
    assert m.device.kind == "cpu" and m.device.sm is None
    assert (m.source.repo_id, m.source.revision) == (builder.upstream.repo_id, builder.upstream.sha)
    assert m.source.architecture == "LlamaForCausalLM" and m.source.dtype == "bfloat16"


@pytest.mark.parametrize("fmt", SUCCEEDING)
def test_artifacts_are_listed_with_true_sizes_and_hashes(builder: Any, fmt: str) -> None:
    result = builder.built(fmt)
    m = result.manifest
    on_disk = {p.relative_to(result.out).as_posix() for p in result.out.rglob("*") if p.is_file()} - {
        "manifest.json"
    }
    assert {a.path for a in m.artifacts} == on_disk
    for a in m.artifacts:
        data = (result.out / a.path).read_bytes()
        assert (a.size, a.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert {a.kind for a in m.artifacts} >= {"checkpoint", "tokenizer", "config"}


@pytest.mark.parametrize("fmt", ["fp8", "int4_awq", "w4a8_awq", "nvfp4"])
def test_the_output_lays_out_as_the_release(builder: Any, fmt: str) -> None:
    """The unified checkpoint is the repo root (runtimes load it by repo id); nothing else is written."""
    result = builder.built(fmt)
    files = {p.relative_to(result.out).as_posix() for p in result.out.rglob("*") if p.is_file()}
    upstream = {
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "generation_config.json",
    }
    q = result.manifest.quantization
    assert (q.checkpoint, q.checkpoint_kind, q.config_file) == (".", "hf_unified", "hf_quant_config.json")
    root = {"config.json", "hf_quant_config.json", "model.safetensors", "manifest.json"} | upstream
    assert files == root  # the upstream's files, not what the exporter's transformers wrote
    assert q.legacy_checkpoint is None
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(result.out)  # what a runtime given the repo id reads first
    assert config.architectures == ["LlamaForCausalLM"]
    assert config.quantization_config["quant_method"] == "modelopt"


def test_int8_sq_is_released_as_the_legacy_checkpoint_runtimes_serve(builder: Any) -> None:
    """No runtime reads a unified W8A8 SmoothQuant checkpoint (and transformers would run its INT8 weights
    without their scales): the release is TensorRT-LLM's legacy checkpoint, which trtllm-build (≤ 1.2) turns
    into an engine; its root holds the upstream's config and metadata files as they are, but no weights."""
    result = builder.built("int8_sq")
    files = {p.relative_to(result.out).as_posix() for p in result.out.rglob("*") if p.is_file()}
    upstream = {
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "generation_config.json",
    }
    legacy = {f"trt-llm/checkpoints/{n}" for n in {"config.json", "rank0.safetensors"} | upstream}
    assert files == {"config.json", "manifest.json"} | upstream | legacy
    q = result.manifest.quantization
    assert (q.checkpoint, q.checkpoint_kind, q.config_file) == (
        "trt-llm/checkpoints",
        "trtllm_legacy",
        "trt-llm/checkpoints/config.json",
    )
    config = json.loads((result.out / "trt-llm/checkpoints/config.json").read_text())
    assert config["architecture"] == "LlamaForCausalLM"  # what trtllm-build's PretrainedConfig reads
    assert q.legacy_checkpoint == "trt-llm/checkpoints" and q.legacy_quantization == config["quantization"]
    assert {a.path for a in result.manifest.artifacts} == files - {"manifest.json"}
    for name in {"config.json"} | upstream:  # the upstream's own bytes
        assert (result.out / name).read_bytes() == (builder.upstream.model_dir / name).read_bytes()
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(result.out).architectures == ["LlamaForCausalLM"]


@pytest.mark.parametrize("fmt", ["fp8", "int4_awq", "w4a8_awq", "int8_sq"])
def test_modelopt_quant_config_and_calibration_record(
    builder: Any, calibration_dataset: str, fmt: str
) -> None:
    result = builder.built(fmt)
    q = result.manifest.quantization
    kv = result.spec.recipe.kv_cache
    quant = json.loads((result.out / q.config_file).read_text())["quantization"]
    assert quant["quant_algo"] == ALGO[fmt] == q.quant_algo
    kv_algo = {"fp8": "FP8", "int8": "INT8", "none": None}[kv]
    assert q.kv_cache_reason
    assert quant.get("kv_cache_quant_algo") == kv_algo == q.kv_cache_quant_algo
    if fmt == "int8_sq":  # the INT8 KV cache of the legacy checkpoint trtllm-build reads
        assert (quant["quant_algo"], quant["kv_cache_quant_algo"]) == ("W8A8_SQ_PER_CHANNEL", "INT8")
    if fmt in ("int4_awq", "w4a8_awq"):
        assert quant["group_size"] == 128 == q.calibration.awq_block_size
    assert q.config["quantization"] == quant
    c = q.calibration
    assert (c.samples, c.samples_requested, c.samples_note, c.seq_len, c.batch_size) == (8, 8, None, 64, 4)
    assert (c.dataset, c.source, c.revision) == ("abisee/cnn_dailymail", "hub", calibration_dataset)
    assert (c.config, c.split, c.text_field, c.seed) == ("3.0.0", "train", "article", None)


@pytest.mark.parametrize("fmt", [*SUCCEEDING, "nvfp4"])
def test_no_output_file_names_the_build_machine(builder: Any, fmt: str) -> None:
    """Manifest, configs, tokenizer files, weights: no absolute path, user or host name of this machine."""
    result = builder.built(fmt)
    assert host_leaks(result.out, result.spec) == []
    spec = result.manifest.spec
    assert (str(spec.work_dir), str(spec.output_dir), spec.cache_dir) == ("work", ".", None)
    assert (
        result.manifest.source.snapshot_dir
        == f"models--{builder.upstream.repo_id.replace('/', '--')}/snapshots/{builder.upstream.sha}"
    )


@pytest.mark.parametrize("fmt", SUCCEEDING)
def test_weights_have_the_formats_dtype_and_packed_shape(builder: Any, fmt: str) -> None:
    name, dtype, shape = Q_PROJ[fmt]
    assert tensor(checkpoint(builder.built(fmt)), name) == (dtype, shape)


def test_kv_cache_scales_are_exported(builder: Any) -> None:
    ckpt = checkpoint(builder.built("int4_awq"))
    assert tensor(ckpt, "model.layers.1.self_attn.k_proj.k_scale")[1] == []
    assert tensor(ckpt, "model.layers.1.self_attn.v_proj.v_scale")[1] == []
    legacy = checkpoint(builder.built("int8_sq"))
    assert tensor(legacy, "transformer.layers.1.attention.kv_cache_scaling_factor") == ("F32", [1])


def test_gptq_checkpoint_is_gptq_format_at_the_output_root(builder: Any) -> None:
    result = builder.built("gptq")
    qcfg = json.loads((result.out / "quantize_config.json").read_text())
    assert (qcfg["bits"], qcfg["group_size"], qcfg["desc_act"]) == (4, 128, False)
    assert qcfg["checkpoint_format"] == "gptq" and qcfg["quant_method"] == "gptq"
    config = json.loads((result.out / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "gptq"
    q = result.manifest.quantization
    assert (q.producer, q.bits, q.group_size, q.desc_act, q.checkpoint_kind) == (
        "gptqmodel",
        4,
        128,
        False,
        "gptq",
    )
    assert q.producer_version == result.manifest.toolchain.gptqmodel
    assert result.manifest.validation.reload.startswith("GPTQModel.load")


@pytest.mark.parametrize("fmt", SUCCEEDING)
def test_validation_records_both_perplexities_and_a_sample(builder: Any, fmt: str) -> None:
    v = builder.built(fmt).manifest.validation
    assert v.ok and v.reason is None
    assert all(c.ok for c in v.checks) and len(v.checks) >= 4
    ppl = v.perplexity
    assert ppl.text == "heldout.txt" and ppl.tokens > 100
    assert ppl.base > 1 and ppl.quantized > 1
    assert ppl.delta == pytest.approx(ppl.quantized - ppl.base)
    assert ppl.delta_pct == pytest.approx(100 * (ppl.quantized - ppl.base) / ppl.base)
    assert v.sample.new_tokens > 0 and v.sample.prompt


def test_base_perplexity_is_the_same_measurement_for_every_format(builder: Any) -> None:
    """Same model, same held-out text, same windows: the worker-run builds agree on the base value, and so
    do those `quantbot build` ran, GPTQ's too, which measures the model as GPTQModel loaded it to quantize
    it (the upstream is bfloat16)."""
    for formats in (("w4a8_awq", "int8_sq"), ("fp8", "gptq")):
        built = [builder.built(f).manifest for f in formats]
        assert len({m.validation.perplexity.base for m in built}) == 1
        assert {m.source.dtype for m in built} == {"bfloat16"}


@pytest.mark.parametrize("fmt", ["fp8", "int4_awq", "gptq", "int8_sq"])
def test_engines_are_recorded_as_not_built_on_a_cpu_machine(builder: Any, fmt: str) -> None:
    m = builder.built(fmt).manifest
    assert [(e.sm, e.status) for e in m.engines] == [(90, "not_built")]
    reason = m.engines[0].reason
    assert (
        ("convert_checkpoint.py" in reason) if fmt == "gptq" else ("TensorRT-LLM is not installed" in reason)
    )
    assert not (builder.built(fmt).out / "trt-llm" / "engines").exists()
    assert m.stage("engines").status == "succeeded"


def test_no_target_sm_skips_the_engine_stage(builder: Any) -> None:
    m = builder.built("w4a8_awq").manifest
    assert m.engines == [] and m.stage("engines").status == "skipped"


def test_progress_lines_cover_every_stage_and_end_with_the_manifest(builder: Any) -> None:
    lines = builder.built("int8_sq").progress
    stages = list(dict.fromkeys(line["stage"] for line in lines))
    assert stages == ["fetch", "load", "quantize", "export", "engines", "validate", "manifest"]
    assert any("calibration" in line["message"] for line in lines)
    last = lines[-1]
    assert last["status"] == "succeeded" and last["manifest"] == str(
        builder.built("int8_sq").spec.manifest_path
    )


def test_formats_of_one_revision_download_once(builder: Any) -> None:
    manifests = [builder.built(f).manifest for f in SUCCEEDING + ["nvfp4"]]
    total = {m.source.total_bytes for m in manifests}
    assert len(total) == 1 and total.pop() > 800_000
    downloaded = sorted(m.source.downloaded_bytes for m in manifests)
    assert downloaded[-1] == manifests[0].source.total_bytes and sum(downloaded) == downloaded[-1]
    assert {builder.built(f).snapshot for f in SUCCEEDING + ["nvfp4"]} == {builder.built("fp8").snapshot}


def test_nvfp4_exports_on_cpu_but_cannot_be_measured_there(builder: Any) -> None:
    """NVFP4 calibrates and exports on CPU, but ModelOpt's NVFP4 fake quantization needs CUDA
    ("amax must be a CUDA tensor"), so the quantized perplexity cannot be measured on this machine: by
    default that fails the build; with validation.require_perplexity off it passes, saying why."""
    result = builder.built("nvfp4")
    assert result.returncode == 1
    m = result.manifest
    assert (
        m.status == "failed" and m.errors[0].kind == "validation_failed" and m.errors[0].stage == "validate"
    )
    assert "CUDA" in m.errors[0].message
    structural = [c for c in m.validation.checks if c.name != "quantized perplexity measured"]
    assert structural and all(c.ok for c in structural)
    assert tensor(checkpoint(result), Q_PROJ["nvfp4"][0]) == Q_PROJ["nvfp4"][1:]
    assert tensor(checkpoint(result), "model.layers.0.self_attn.q_proj.weight_scale") == ("F8_E4M3", [128, 8])

    relaxed = result.spec.model_copy(
        update={"validation": result.spec.validation.model_copy(update={"require_perplexity": False})}
    )
    again = builder.run(relaxed)
    assert again.returncode == 0, again.stderr[-2000:]
    resumed = {line["stage"] for line in again.progress if line["message"] == "done in an earlier run"}
    assert resumed == {"fetch", "load", "quantize", "export"}
    ppl = again.manifest.validation.perplexity
    assert ppl.quantized is None and "CUDA" in ppl.not_measured and ppl.base > 1


def test_gptq_reports_each_layers_calibration_and_quantization_with_counts(builder: Any) -> None:
    result = builder.run(builder.spec("gptq-progress", "gptq", recipe={"calib_batch_size": 4}))
    assert result.returncode == 0, result.stderr[-2000:]
    counted = [line for line in result.progress if "steps" in line]
    layers = int(counted[0]["message"].split("layer 1/")[1].split(",")[0])
    for layer in range(1, layers + 1):  # every layer, not only the first
        assert any(f"calibrating: layer {layer}/{layers}," in line["message"] for line in counted)
        assert any(f"quantizing: layer {layer}/{layers}," in line["message"] for line in counted)
    steps = [line["step"] for line in counted]
    assert steps == sorted(steps) and steps[-1] == counted[-1]["steps"] > layers
    fractions = [line["fraction"] for line in counted]
    assert fractions == sorted(fractions) and fractions[-1] > fractions[0]
