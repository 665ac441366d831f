"""The planner: every canonical format on every SM family for real model shapes, and every refusal."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from bot.eligibility.facts import ModelFacts, build_facts
from bot.eligibility.matrices import FORMATS
from bot.eligibility.planner import Plan, PlanOptions, plan
from bot.eligibility.targets import GIB, Target, target_for

ALL_SMS = (80, 86, 87, 89, 90, 100, 103, 120, 121)
FAMILY = {80: "ampere", 86: "ampere", 87: "ampere", 89: "ada", 90: "hopper"}
FAMILY |= {100: "sm100", 103: "sm100", 120: "sm120", 121: "sm120"}

# What the seed matrices give under the strict policy, per model and per family.
STRICT = {
    "mistral": {
        "ampere": {"int4_awq"},
        "ada": {"fp8", "int4_awq"},
        "hopper": {"fp8", "int4_awq"},
        "sm100": {"fp8"},
        "sm120": {"fp8"},
    },
    "qwen2": {
        "ampere": {"int4_awq", "gptq"},
        "ada": {"fp8", "int4_awq", "w4a8_awq", "gptq"},
        "hopper": {"fp8", "int4_awq", "w4a8_awq", "gptq"},
        "sm100": {"fp8", "nvfp4"},
        "sm120": {"fp8", "nvfp4"},
    },
    "gemma3_text": {
        "ampere": {"int4_awq"},
        "ada": {"fp8", "int4_awq"},
        "hopper": {"fp8", "int4_awq"},
        "sm100": {"fp8"},
        "sm120": {"fp8"},
    },
    "mixtral": {
        "ampere": set(),
        "ada": {"fp8"},
        "hopper": {"fp8"},
        "sm100": {"fp8", "nvfp4"},
        "sm120": {"fp8", "nvfp4"},
    },
    "llama3.1": {
        "ampere": {"int4_awq", "gptq"},
        "ada": {"fp8", "int4_awq", "w4a8_awq", "gptq"},
        "hopper": {"fp8", "int4_awq", "w4a8_awq", "gptq"},
        "sm100": {"fp8", "nvfp4"},
        "sm120": {"fp8", "nvfp4"},
    },
    "granite": dict.fromkeys(("ampere", "ada", "hopper", "sm100", "sm120"), set()),
    "unknown": dict.fromkeys(("ampere", "ada", "hopper", "sm100", "sm120"), set()),
}


def facts(config: dict[str, Any], name: str = "org/model", **kw: Any) -> ModelFacts:
    kw.setdefault("files", ["model.safetensors"])
    return build_facts(config, name=name, source="local", **kw)


def plan_for(config: dict[str, Any], sms: tuple[int, ...] = ALL_SMS, **options: Any) -> Plan:
    """A plan under the seed-only strict policy unless `policy` says otherwise (these tests read seeds)."""
    return plan(facts(config), [target_for(sm) for sm in sms], PlanOptions(**{"policy": "strict", **options}))


def by_sm(result: Plan) -> dict[int, dict[str, Any]]:
    return {
        t.target.sm: {
            "eligible": {e.format: e for e in t.eligible},
            "skipped": {s.format: s.reason for s in t.skipped},
        }
        for t in result.targets
    }


@pytest.mark.parametrize("model", sorted(STRICT))
def test_strict_policy_on_every_sm_family(configs: dict[str, Any], model: str) -> None:
    result = plan_for(configs[model])
    assert result.skipped is None
    for sm, decided in by_sm(result).items():
        assert set(decided["eligible"]) == STRICT[model][FAMILY[sm]], (model, sm)
        # every canonical format is decided exactly once per SM, and every skip names why
        assert sorted([*decided["eligible"], *decided["skipped"]]) == sorted(FORMATS)
        assert all(reason for reason in decided["skipped"].values())
        assert all(e.status == "supported" for e in decided["eligible"].values())


def test_the_issue_example_mistral(configs: dict[str, Any]) -> None:
    decided = by_sm(plan_for(configs["mistral"], (90, 100)))
    assert set(decided[90]["eligible"]) == {"fp8", "int4_awq"}
    assert decided[90]["skipped"]["nvfp4"] == "TensorRT-LLM model matrix: Mistral × NVFP4 is not listed (.)"
    assert decided[90]["skipped"]["w4a8_awq"] == "ModelOpt: Mistral × w4a8_awq is not supported (❌)"
    assert (
        decided[90]["skipped"]["gptq"] == "TensorRT-LLM model matrix: Mistral × W4A16 GPTQ is not listed (.)"
    )
    assert decided[90]["skipped"]["int8_sq"] == (
        "TensorRT-LLM model matrix: no column for int8_sq; trtllm-build (TensorRT-LLM ≤ 1.2) loads it on "
        "sm90 (runtimes.yaml), so the permissive policy builds it here as untested: "
        'set policy = "permissive" or run `quantbot plan --policy permissive`'
    )
    assert decided[100]["skipped"]["int8_sq"].endswith("no policy makes it eligible here")
    assert set(decided[100]["eligible"]) == {"fp8"}
    assert (
        decided[100]["skipped"]["int4_awq"]
        == "TensorRT-LLM hardware matrix: Blackwell(sm100) × W4A16 AWQ is not listed (.)"
    )


def test_skips_name_the_producer_cell(configs: dict[str, Any]) -> None:
    decided = by_sm(plan_for(configs["unknown"], (90,)))[90]["skipped"]
    assert decided["fp8"] == "ModelOpt: no row for model_type 'zorble'"
    assert decided["gptq"] == "GPTQModel 7.6.0: model_type 'zorble' is not among its models"
    qwen3 = by_sm(plan_for(configs["qwen2"] | {"model_type": "qwen3"}, (90,)))[90]
    assert qwen3["skipped"]["fp8"] == "ModelOpt: no row for model_type 'qwen3'"
    assert set(qwen3["eligible"]) == {"gptq"}  # GPTQModel has qwen3, TensorRT-LLM's Qwen-3 row has W4A16 GPTQ


def test_llama3_uses_the_generic_llama_row_when_the_llama3_row_is_silent(configs: dict[str, Any]) -> None:
    fp8 = by_sm(plan_for(configs["llama3.1"], (90,)))[90]["eligible"]["fp8"]
    assert fp8.status == "supported"
    w4a8 = by_sm(plan_for(configs["llama3.1"], (90,)))[90]["eligible"]["w4a8_awq"]
    assert any("footnote 3" in note for note in w4a8.notes)  # ✅<sup>3</sup>: only on some models


def test_footnotes_of_the_producer_cell_travel_with_the_format(configs: dict[str, Any]) -> None:
    mixtral = by_sm(plan_for(configs["mixtral"], (100,)))[100]
    assert "footnote 2" not in " ".join(mixtral["eligible"]["fp8"].notes)
    gemma = by_sm(plan_for(configs["gemma3_text"], (90,)))[90]["eligible"]["fp8"]
    assert any("only support for exporting quantized checkpoints" in n for n in gemma.notes)  # ✅<sup>2</sup>


def test_fp8_kv_cache_is_offered_where_both_matrices_say_y(configs: dict[str, Any]) -> None:
    decided = by_sm(plan_for(configs["mistral"], (90, 80)))
    assert decided[90]["eligible"]["fp8"].kv_cache == ("fp8",)
    assert decided[80]["eligible"]["int4_awq"].kv_cache == ("fp8",)


def test_permissive_admits_unlisted_model_cells_as_untested(configs: dict[str, Any]) -> None:
    decided = by_sm(plan_for(configs["mistral"], (90, 100), policy="permissive"))
    nvfp4 = decided[100]["eligible"]["nvfp4"]
    assert nvfp4.status == "untested"
    assert any("Mistral × NVFP4 is not listed" in note for note in nvfp4.notes)
    # never the producer's ❌ nor the hardware matrix
    assert decided[100]["skipped"]["w4a8_awq"].startswith("ModelOpt: Mistral × w4a8_awq is not supported")
    assert decided[90]["skipped"]["nvfp4"] == "TensorRT-LLM hardware matrix: Hopper × NVFP4 is not listed (.)"
    assert decided[90]["eligible"]["fp8"].status == "supported"


def test_permissive_on_a_model_outside_the_matrices(configs: dict[str, Any]) -> None:
    decided = by_sm(plan_for(configs["granite"], (80, 90, 100), policy="permissive"))
    assert set(decided[90]["eligible"]) == {"gptq"} and decided[90]["eligible"]["gptq"].status == "untested"
    assert set(decided[80]["eligible"]) == {"gptq"}
    assert decided[100]["eligible"] == {}  # the hardware matrix has no W4A16 GPTQ on Blackwell
    unknown = by_sm(plan_for(configs["unknown"], (90,), policy="permissive"))
    assert unknown[90]["eligible"] == {}


def test_permissive_int8_sq_is_untested_and_says_it_has_no_column(configs: dict[str, Any]) -> None:
    int8 = by_sm(plan_for(configs["mistral"], (90,), policy="permissive"))[90]["eligible"]["int8_sq"]
    assert int8.status == "untested"
    assert int8.notes == (
        "untested (permissive policy): TensorRT-LLM model matrix: no column for int8_sq; trtllm-build "
        "(TensorRT-LLM ≤ 1.2) loads it on sm90 (runtimes.yaml)",
        "untested (permissive policy): TensorRT-LLM hardware matrix: no column for int8_sq; trtllm-build "
        "(TensorRT-LLM ≤ 1.2) loads it on sm90 (runtimes.yaml)",
    )
    mixtral = by_sm(plan_for(configs["mixtral"], (90,), policy="permissive"))[90]["skipped"]
    assert mixtral["int8_sq"] == "ModelOpt: Mixtral 8x7B, 8x22B × int8_sq is not supported (❌)"


# --- whole-model refusals -------------------------------------------------------------------------------


def _refusal(f: ModelFacts, **options: Any) -> str | None:
    result = plan(f, [target_for(90), target_for(89)], PlanOptions(**options))
    if result.skipped:
        for t in result.targets:
            assert t.eligible == () and [s.format for s in t.skipped] == list(FORMATS)
            assert all(s.reason == f"model refused: {result.skipped}" for s in t.skipped)
    return result.skipped


def test_refuses_a_model_that_does_not_generate_text(configs: dict[str, Any]) -> None:
    bert = {"architectures": ["BertForMaskedLM"], "model_type": "bert", "hidden_size": 768}
    assert "not a text-generation model (architectures: BertForMaskedLM" in _refusal(facts(bert))


def test_refuses_custom_code_unless_the_repo_is_allowlisted(configs: dict[str, Any]) -> None:
    custom = configs["mistral"] | {"auto_map": {"AutoModelForCausalLM": "modeling_x.XForCausalLM"}}
    assert "custom code (auto_map" in _refusal(facts(custom, name="org/custom"))
    assert (
        _refusal(facts(custom, name="org/custom"), trust_remote_code_repos=frozenset({"org/custom"})) is None
    )


def test_refuses_an_already_quantized_model(configs: dict[str, Any]) -> None:
    quantized = configs["mistral"] | {"quantization_config": {"quant_method": "gptq", "bits": 4}}
    assert _refusal(facts(quantized)) == "already quantized (quantization_config: gptq)"
    exported = facts(configs["mistral"], files=["model.safetensors", "hf_quant_config.json"])
    assert "already quantized" in _refusal(exported)


def test_refuses_pickle_only_weights_unless_allowed(configs: dict[str, Any]) -> None:
    pickled = facts(configs["mistral"], files=["pytorch_model.bin", "config.json"])
    assert _refusal(pickled) == "only pickle weights (pytorch_model.bin) and allow_pickle is off"
    assert _refusal(pickled, allow_pickle=True) is None
    both = facts(configs["mistral"], files=["pytorch_model.bin", "model.safetensors"])
    assert _refusal(both) is None


def test_refuses_a_licence_outside_the_allowlist(configs: dict[str, Any]) -> None:
    llama = facts(configs["mistral"], card={"license": "llama3.1"})
    allowed = frozenset({"apache-2.0", "mit"})
    assert (
        _refusal(llama, allowed_licenses=allowed)
        == "licence 'llama3.1' is not in allowed_licenses (apache-2.0, mit)"
    )
    assert (
        _refusal(facts(configs["mistral"], card={"license": "apache-2.0"}), allowed_licenses=allowed) is None
    )
    assert (
        _refusal(facts(configs["mistral"]), allowed_licenses=allowed)
        == "licence unknown and allowed_licenses is set"
    )
    assert _refusal(llama) is None  # no allowlist configured: any licence


def test_refuses_a_gated_repo_unless_allowed(configs: dict[str, Any]) -> None:
    gated = facts(configs["mistral"], gated="manual")
    assert _refusal(gated) == "gated repo (gated: manual) and allow_gated is off"
    assert _refusal(gated, allow_gated=True) is None


def test_several_refusals_are_all_reported(configs: dict[str, Any]) -> None:
    both = facts(configs["mistral"] | {"quantization_config": {"quant_method": "awq"}}, gated="auto")
    reason = _refusal(both)
    assert "already quantized" in reason and "gated repo" in reason


def test_refuses_a_model_too_large_for_every_target_gpu(configs: dict[str, Any]) -> None:
    mixtral = facts(configs["mixtral"])  # 46.7B parameters in bf16
    targets = [target_for(90, memory_gib={90: 80.0}), target_for(89, memory_gib={89: 48.0})]
    result = plan(mixtral, targets)
    assert result.skipped is not None and result.skipped.startswith(
        "too large for every target GPU: needs ~104.4 GiB"
    )
    assert (
        "46.7B parameters (estimated from config.json dimensions) × 2 bytes (bfloat16) × 1.2 headroom"
        in result.skipped
    )
    assert "sm90 80.0 GiB" in result.skipped and "sm89 48.0 GiB" in result.skipped


def test_too_large_for_one_target_skips_only_that_target(configs: dict[str, Any]) -> None:
    mistral = facts(configs["mistral"])  # ~16.2 GiB needed
    small = Target(89, "Ada Lovelace", "Ada Lovelace", memory_bytes=12 * GIB, memory_source="configured")
    result = plan(mistral, [target_for(90, memory_gib={90: 80.0}), small], PlanOptions(policy="strict"))
    assert result.skipped is None
    decided = by_sm(result)
    assert set(decided[90]["eligible"]) == {"fp8", "int4_awq"}
    assert decided[89]["eligible"] == {}
    assert decided[89]["skipped"]["fp8"] == "too large for sm89 (configured, 12.0 GiB): needs ~16.2 GiB"


def test_memory_check_is_skipped_honestly_when_memory_is_unknown(configs: dict[str, Any]) -> None:
    result = plan(facts(configs["mixtral"]), [target_for(90)])
    assert result.skipped is None
    assert result.targets[0].notes == (
        "memory check skipped: no local sm90 GPU and no sm_memory_gib configured for it (needs ~104.4 GiB)",
    )
    unknown_size = plan(
        facts({"architectures": ["MistralForCausalLM"], "model_type": "mistral"}), [target_for(90)]
    )
    assert unknown_size.targets[0].notes == ("memory check skipped: parameter count unknown",)


def test_plan_json_shape(configs: dict[str, Any]) -> None:
    data = plan_for(configs["mistral"], (90, 100)).to_json()
    assert set(data) == {"model", "revision", "family", "skipped", "targets"}
    assert data["model"] == "org/model" and data["revision"] is None and data["skipped"] is None
    assert data["family"]["modelopt_rows"] == ["Mistral"] and data["family"]["trtllm_rows"] == ["Mistral"]
    target = data["targets"][0]
    assert (target["sm"], target["arch"]) == (90, "Hopper")
    assert [e["format"] for e in target["eligible"]] == ["fp8", "int4_awq"]
    assert {"format", "producer", "status", "kv_cache", "notes"} <= set(target["eligible"][0])
    assert all(set(s) == {"format", "reason"} for s in target["skipped"])
    assert data["targets"][1]["arch"] == "Blackwell"


def test_importing_the_planner_imports_neither_torch_nor_transformers() -> None:
    code = (
        "import sys, bot.eligibility.planner, bot.eligibility.facts, bot.eligibility.targets\n"
        "import bot.eligibility.matrices\n"
        "print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
