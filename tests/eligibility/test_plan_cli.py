"""`quantbot plan` on local folders: tables, one JSON object, and bad input as one line with exit code 2."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import bot.host.gpus
from bot.cli import main


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "QUANTBOT_CONFIG",
        "QUANTBOT_TARGET_SMS",
        "QUANTBOT_REMOTE_SMS",
        "QUANTBOT_POLICY",
        "QUANTBOT_DEBUG",
    ):
        monkeypatch.delenv(name, raising=False)


def quantbot(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_json_is_exactly_one_object_in_the_issue_shape(
    capsys: Any, make_model: Any, configs: dict[str, Any]
) -> None:
    folder = make_model(configs["mistral"])
    code, out, err = quantbot(capsys, "plan", str(folder), "--sm", "90,100", "--json", "--policy", "strict")
    assert code == 0, err
    data = json.loads(out)  # the whole of stdout is one JSON document
    assert set(data) == {"model", "revision", "family", "skipped", "targets"}
    assert data["model"] == str(folder) and data["revision"] is None and data["skipped"] is None
    assert isinstance(data["family"], dict)
    assert [(t["sm"], t["arch"]) for t in data["targets"]] == [(90, "Hopper"), (100, "Blackwell")]
    hopper = data["targets"][0]
    assert [e["format"] for e in hopper["eligible"]] == ["fp8", "int4_awq"]
    assert {
        "format": "nvfp4",
        "reason": "TensorRT-LLM model matrix: Mistral × NVFP4 is not listed (.)",
    } in hopper["skipped"]
    assert [e["format"] for e in data["targets"][1]["eligible"]] == ["fp8"]


def test_table_per_sm(capsys: Any, make_model: Any, configs: dict[str, Any]) -> None:
    code, out, _ = quantbot(
        capsys, "plan", str(make_model(configs["qwen2"])), "--sm", "80,120", "--policy", "strict"
    )
    assert code == 0
    assert 'ModelOpt row: "QWen 2, 2.5"' in out and 'TensorRT-LLM row: "Qwen-2/2.5"' in out
    ampere = out.split("sm80 · Ampere")[1].split("sm120")[0]
    assert "int4_awq  eligible" in ampere and "gptq      eligible" in ampere
    assert (
        "fp8       skipped   TensorRT-LLM hardware matrix: Ampere × FP8(per tensor) is not listed (.)"
        in ampere
    )
    assert "nvfp4     eligible" in out.split("sm120 · Blackwell(sm120)")[1]
    assert "[1] ModelOpt footnote 4:" in out
    runs_with = out.split("Runs with (bot/eligibility/matrices/runtimes.yaml):")[1]
    assert "int4_awq  TensorRT-LLM (PyTorch backend) (sm80, sm86, sm87, sm89, sm90)" in runs_with
    assert (
        "gptq      vLLM (sm75+), SGLang (sm80+), transformers + GPTQModel / optimum (any GPU, or CPU), "
        "Text Generation Inference (sm75, sm80, sm86, sm87, sm89, sm90)" in runs_with
    )


def test_the_kv_cache_is_shown_as_the_build_will_set_it(
    capsys: Any, make_model: Any, configs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """GPTQ builds carry no KV-cache scales; an FP8 KV cache is the default only where every SM of the one
    build marks it; the `build_recipe` setting overrides the default as the build does."""
    folder = str(make_model(configs["qwen2"]))
    code, out, _ = quantbot(capsys, "plan", folder, "--sm", "90,89")
    assert code == 0
    hopper = out.split("sm90 · Hopper")[1].split("sm89")[0]
    assert "gptq      eligible  KV cache: none" in hopper and "fp8       eligible  KV cache: fp8" in hopper
    kv = out.split("KV cache, as each build sets it (one build for all of a format's SMs):")[1]
    assert "gptq      not quantized: GPTQ checkpoints carry no KV-cache scales" in kv
    assert "fp8       fp8 by default: TensorRT-LLM's matrices mark FP8 KV cache for qwen2 on sm90, sm89" in kv
    code, out, _ = quantbot(capsys, "plan", folder, "--sm", "90", "--json")
    eligible = {e["format"]: e["kv_cache"] for e in json.loads(out)["targets"][0]["eligible"]}
    assert eligible["gptq"] == [] and eligible["fp8"] == ["fp8"]
    monkeypatch.setenv("QUANTBOT_BUILD_RECIPE", '{kv_cache = "none"}')
    code, out, _ = quantbot(capsys, "plan", folder, "--sm", "90")
    assert "fp8       eligible  KV cache: none" in out and "fp8       none: set by the build_recipe" in out


def test_permissive_flag(capsys: Any, make_model: Any, configs: dict[str, Any]) -> None:
    code, out, _ = quantbot(
        capsys, "plan", str(make_model(configs["mistral"])), "--sm", "100", "--policy", "permissive", "--json"
    )
    assert code == 0
    blackwell = json.loads(out)["targets"][0]
    eligible = {e["format"]: e["status"] for e in blackwell["eligible"]}
    assert eligible == {"fp8": "supported", "nvfp4": "untested"}
    # no runtime runs INT8 SmoothQuant on Blackwell, so not even the permissive policy offers int8_sq there
    (int8,) = [s["reason"] for s in blackwell["skipped"] if s["format"] == "int8_sq"]
    assert int8.endswith(
        "no runtime loads int8_sq on sm100 (runtimes.yaml: trtllm-build (TensorRT-LLM ≤ 1.2) "
        "(sm80, sm86, sm87, sm89, sm90)): no policy makes it eligible here"
    )


def test_no_gpu_and_no_sm_says_so_and_uses_the_configured_sms(
    capsys: Any, make_model: Any, configs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bot.host.gpus, "local_gpus", list)  # the same answer on a CI runner that has a GPU
    code, out, err = quantbot(capsys, "plan", str(make_model(configs["mistral"])), "--json")
    assert code == 0
    assert "no GPU found and no --sm given: planning for the configured SMs 80, 89, 90, 100, 120" in err
    assert [t["sm"] for t in json.loads(out)["targets"]] == [80, 89, 90, 100, 120]
    monkeypatch.setenv("QUANTBOT_TARGET_SMS", "89,121")
    code, out, err = quantbot(capsys, "plan", str(make_model(configs["mistral"])), "--json")
    assert [t["sm"] for t in json.loads(out)["targets"]] == [89, 121]


def test_refused_model_in_table_and_json(capsys: Any, make_model: Any, configs: dict[str, Any]) -> None:
    folder = make_model(configs["mistral"] | {"quantization_config": {"quant_method": "awq"}})
    code, out, _ = quantbot(capsys, "plan", str(folder), "--sm", "90")
    assert code == 0 and "Refused: already quantized (quantization_config: awq)" in out
    code, out, _ = quantbot(capsys, "plan", str(folder), "--sm", "90", "--json")
    assert json.loads(out)["skipped"] == "already quantized (quantization_config: awq)"


def test_unknown_model_type_is_planned_as_no_matrix_row(
    capsys: Any, make_model: Any, configs: dict[str, Any]
) -> None:
    code, out, _ = quantbot(
        capsys, "plan", str(make_model(configs["unknown"])), "--sm", "90", "--json", "--policy", "strict"
    )
    assert code == 0
    data = json.loads(out)
    assert data["skipped"] is None and data["targets"][0]["eligible"] == []
    assert {"format": "fp8", "reason": "ModelOpt: no row for model_type 'zorble'"} in data["targets"][0][
        "skipped"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{missing}"], "no config.json in"),
        (["{bad_json}"], "is not valid JSON"),
        (["{not_object}"], "is not a JSON object"),
        (["{good}", "--sm", "75"], "unknown SM 75"),
        (["{good}", "--sm", "ninety"], "--sm: 'ninety' is not an SM number"),
        (["{good}", "--revision", "main"], "--revision applies to Hub repos"),
        (["{good}/config.json"], "is a file; give the model's folder"),
        (["./no/such/folder"], "is neither an existing folder nor a Hub repo id"),
        (["{good}", "--policy", "lax"], "Invalid value for '--policy'"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    capsys: Any, tmp_path: Path, make_model: Any, configs: dict[str, Any], args: list[str], message: str
) -> None:
    folders = {
        "missing": tmp_path / "empty",
        "bad_json": make_model("{not json", name="bad_json"),
        "not_object": make_model('"text"', name="not_object"),
        "good": make_model(configs["mistral"], name="good"),
    }
    folders["missing"].mkdir()
    code, out, err = quantbot(capsys, "plan", *(a.format(**folders) for a in args))
    assert code == 2, err
    assert message in err and out == ""
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 or "Usage:" in err  # click's usage errors print a usage line


def test_entry_point_prints_no_traceback(tmp_path: Path) -> None:
    """The real entry point, end to end, for the most common mistake (a folder without config.json)."""
    result = subprocess.run(
        [sys.executable, "-c", "from bot.cli import main; main()", "plan", str(tmp_path), "--sm", "90"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr == f"Error: no config.json in {tmp_path}\n"


def test_a_tiny_model_is_sized_in_human_units(capsys: Any, make_model: Any, configs: dict[str, Any]) -> None:
    tiny = configs["mistral"] | {
        "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2, "vocab_size": 512,
        "num_attention_heads": 4, "num_key_value_heads": 4,
    }  # fmt: skip
    code, out, _ = quantbot(capsys, "plan", str(make_model(tiny)), "--sm", "90")
    assert code == 0
    header = out.splitlines()[1]
    assert re.search(r" \d{3}\.\dK parameters \(", header), header
    assert "0.00B" not in out and "0.0 GiB" not in out


def test_the_plan_says_per_sm_whether_an_engine_or_a_serving_check_runs(
    capsys: Any, make_model: Any, configs: dict[str, Any]
) -> None:
    folder = str(make_model(configs["qwen2"]))
    code, out, _ = quantbot(capsys, "plan", folder, "--sm", "80,90", "--policy", "permissive")
    assert code == 0
    hopper = out.split("sm90 · Hopper")[1]
    assert "per-SM task: serving check (vLLM, SGLang, TensorRT-LLM ≥ 1.3)" in hopper.split("int4_awq")[0]
    assert "per-SM task: engine (trtllm-build, on a worker with TensorRT-LLM ≤ 1.2)" in hopper
    code, out, _ = quantbot(capsys, "plan", folder, "--sm", "80,90", "--policy", "permissive", "--json")
    steps = {(t["sm"], e["format"]): e["sm_step"] for t in json.loads(out)["targets"] for e in t["eligible"]}
    # int4_awq: only TensorRT-LLM's PyTorch backend loads it; int8_sq: only trtllm-build's engine; on sm80
    # SGLang and TensorRT-LLM do not load fp8 and vLLM's Marlin kernel does
    assert steps[90, "int4_awq"] == {
        "engine": False,
        "serving_check": ["TensorRT-LLM ≥ 1.3"],
        "text": "serving check (TensorRT-LLM ≥ 1.3)",
    }
    assert steps[90, "int8_sq"]["engine"] and steps[90, "int8_sq"]["serving_check"] == []
    assert steps[90, "gptq"]["serving_check"] == ["vLLM", "SGLang", "transformers + GPTQModel / optimum"]
    assert (80, "fp8") not in steps or steps[80, "fp8"]["serving_check"] == ["vLLM"]
