"""The runtimes policy, family by family: a format is offered where a runtime that loads it runs the family,
and every yes and every no names its source (ModelOpt's current table, the runtimes' model lists, the seed
matrices, a measured toolchain limit). The strict policy still answers from the seeds alone."""

from __future__ import annotations

from typing import Any

import pytest
from test_planner import by_sm, facts, plan_for

from bot.eligibility.matrices.families import load_families
from bot.eligibility.planner import PlanOptions, plan
from bot.eligibility.specs import eligibility_of
from bot.eligibility.targets import target_for

DENSE = {"hidden_size": 2048, "intermediate_size": 6144, "num_attention_heads": 16, "num_hidden_layers": 24}
DENSE |= {"num_key_value_heads": 8, "vocab_size": 151936, "torch_dtype": "bfloat16"}
QWEN3 = DENSE | {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "head_dim": 128}
QWEN3_MOE = QWEN3 | {
    "architectures": ["Qwen3MoeForCausalLM"],
    "model_type": "qwen3_moe",
    "num_experts": 128,
    "num_experts_per_tok": 8,
    "moe_intermediate_size": 768,
}
PHI3 = DENSE | {
    "architectures": ["Phi3ForCausalLM"],
    "model_type": "phi3",
    "vocab_size": 32064,
    "auto_map": {
        "AutoConfig": "configuration_phi3.Phi3Config",
        "AutoModelForCausalLM": "modeling_phi3.Phi3ForCausalLM",
    },
}
QWEN2_5_VL = {
    "architectures": ["Qwen2_5_VLForConditionalGeneration"],
    "model_type": "qwen2_5_vl",
    "text_config": DENSE | {"model_type": "qwen2_5_vl_text"},
    "vision_config": {"depth": 32, "hidden_size": 1280, "out_hidden_size": 2048},
}
LLAVA = {
    "architectures": ["LlavaForConditionalGeneration"],
    "model_type": "llava",
    "text_config": DENSE | {"model_type": "llama"},
    "vision_config": {"model_type": "clip_vision_model", "hidden_size": 1024, "num_hidden_layers": 24},
}
IDEFICS3 = LLAVA | {"architectures": ["Idefics3ForConditionalGeneration"], "model_type": "idefics3"}
RECURRENT_GEMMA = DENSE | {"architectures": ["RecurrentGemmaForCausalLM"], "model_type": "recurrent_gemma"}


def _runtimes(config: dict[str, Any], sms: tuple[int, ...] = (80, 89, 90, 100), **options: Any) -> dict:
    return by_sm(plan_for(config, sms, policy="runtimes", **options))


def test_the_runtimes_policy_is_the_default_and_strict_stays_a_setting(configs: dict[str, Any]) -> None:
    assert PlanOptions().policy == "runtimes"
    strict = plan_for(configs["mistral"], (90,), policy="strict")
    assert strict.policy == "strict" and eligibility_of(strict).policy == "strict"
    assert "gptq" not in by_sm(strict)[90]["eligible"]


def test_gptq_is_gated_on_the_runtimes_that_load_it_not_on_tensorrt_llm(configs: dict[str, Any]) -> None:
    """Mistral GPTQ: TensorRT-LLM's W4A16 GPTQ column says no, but TensorRT-LLM loads no GPTQ checkpoint;
    vLLM, SGLang, TGI and transformers do, and each lists MistralForCausalLM."""
    strict = by_sm(plan_for(configs["mistral"], (90,), policy="strict"))[90]["skipped"]["gptq"]
    assert strict == "TensorRT-LLM model matrix: Mistral × W4A16 GPTQ is not listed (.)"
    offered = _runtimes(configs["mistral"])
    for sm in (80, 89, 90):
        gptq = offered[sm]["eligible"]["gptq"]
        assert gptq.notes[0] == "made by: GPTQModel 7.6.0 has model_type mistral"
        assert "vLLM runs MistralForCausalLM" in gptq.notes[1] and "SGLang runs" in gptq.notes[1]
    assert "Text Generation Inference" not in offered[100]["eligible"]["gptq"].notes[1]  # no Blackwell
    formats = eligibility_of(plan_for(configs["mistral"], (90,), policy="runtimes"))  # what /formats shows
    assert formats.runs_with["gptq"].startswith(
        "vLLM runs MistralForCausalLM; SGLang runs MistralForCausalLM"
    )
    assert formats.runs_with["gptq"].endswith("; GPTQModel 7.6.0 has model_type mistral")


def test_dense_qwen3_gets_modelopt_formats_from_modelopts_current_table() -> None:
    strict = by_sm(plan_for(QWEN3, (90,), policy="strict"))[90]["skipped"]
    assert strict["fp8"] == "ModelOpt: no row for model_type 'qwen3'"
    fp8 = _runtimes(QWEN3)[90]["eligible"]["fp8"]
    assert fp8.notes[0] == "made by: ModelOpt HF table: QWen3, 3.5 MOE, Next × fp8 is supported"
    assert (
        "ModelOpt HF table footnote 6: Some models currently support export to HF format only." in fp8.notes
    )
    assert "TensorRT-LLM (PyTorch backend) (Qwen-3 × FP8(per tensor): Y)" in fp8.notes[-1]
    assert "int4_awq" not in _runtimes(QWEN3)[90]["eligible"]  # ModelOpt lists no AWQ for Qwen3 ("-")


def test_a_mixture_of_experts_is_offered_what_round_trips_and_told_why_not_the_rest() -> None:
    """Qwen3-MoE: fp8, nvfp4 and gptq on the SMs that run them; AWQ is skipped with the measured ModelOpt
    limit (under the strict policy too), never built to crash."""
    decided = _runtimes(QWEN3_MOE)
    assert set(decided[90]["eligible"]) == {"fp8", "nvfp4", "gptq"}
    runs = decided[90]["eligible"]["gptq"].notes[-1]
    assert "vLLM runs Qwen3MoeForCausalLM" in runs and "transformers + GPTQModel" not in runs  # fused experts
    limit = load_families().limit("int4_awq", "qwen3_moe")
    assert limit is not None and "QuantMixtralExperts" in limit.reason
    for policy in ("runtimes", "strict"):
        skipped = by_sm(plan_for(QWEN3_MOE, (90,), policy=policy))[90]["skipped"]
        assert skipped["int4_awq"].startswith("ModelOpt cannot export AWQ weights of fused experts")
        assert skipped["int4_awq"].endswith("(toolchain_limits.yaml: " + limit.source + ")")
        assert skipped["w4a8_awq"] == skipped["int4_awq"]


def test_mixtral_gptq_is_offered_where_its_upstream_names_are_read(configs: dict[str, Any]) -> None:
    """The release keeps Mixtral's own names (block_sparse_moe.experts.N.w1), which vLLM's and SGLang's
    loaders read and transformers 5.14 does not."""
    decided = _runtimes(configs["mixtral"], (80, 90))
    for sm in (80, 90):
        runs = decided[sm]["eligible"]["gptq"].notes[-1]
        assert "vLLM runs MixtralForCausalLM" in runs and "SGLang runs MixtralForCausalLM" in runs, runs
        assert "transformers + GPTQModel" not in runs
    assert load_families().limit("gptq", "mixtral") is None


def test_a_family_no_runtime_lists_is_skipped_naming_each_runtime() -> None:
    """RecurrentGemma: ModelOpt makes fp8 of it, but no runtime of the table lists the architecture."""
    skipped = _runtimes(RECURRENT_GEMMA, (90,))[90]["skipped"]["fp8"]
    assert skipped.startswith("no runtime runs RecurrentGemmaForCausalLM in fp8 on sm90: ")
    assert "vLLM: its model list has no RecurrentGemmaForCausalLM (runtime_models.yaml)" in skipped
    assert "TensorRT-LLM (PyTorch backend): TensorRT-LLM model matrix: no row for model_type" in skipped


def test_remote_code_is_refused_unless_trusted_and_then_planned_like_its_family() -> None:
    refused = plan(facts(PHI3, name="org/phi"), [target_for(90)])
    assert refused.skipped and "trust_remote_code_repos" in refused.skipped
    trusted = _runtimes(PHI3, (90,), trust_remote_code_repos=frozenset({"org/model"}))[90]
    assert set(trusted["eligible"]) == {"fp8", "w4a8_awq", "gptq"}  # TensorRT-LLM: Phi × W4A16 AWQ "."
    assert "vLLM runs Phi3ForCausalLM" in trusted["eligible"]["gptq"].notes[1]


def test_a_vision_language_model_gets_modelopts_formats_for_its_language_model_and_no_gptq() -> None:
    """Qwen2.5-VL: ModelOpt's VLM table makes FP8 and NVFP4 of its language model and vLLM runs it; GPTQ is
    refused with what was measured; INT4 AWQ is refused because its one loader, TensorRT-LLM, has no row."""
    plans = _runtimes(QWEN2_5_VL, (90, 100))
    assert plans[90]["eligible"].keys() == {"fp8", "nvfp4"} and plans[100]["eligible"].keys() == {
        "fp8",
        "nvfp4",
    }
    notes = plans[90]["eligible"]["fp8"].notes
    assert notes[0] == "made by: ModelOpt HF table: VLM: Qwen2, 2.5-VL × fp8 is supported"
    assert "vLLM runs Qwen2_5_VLForConditionalGeneration" in notes[1]
    gptq = plans[90]["skipped"]["gptq"]
    assert "Qwen2VLVideoProcessor requires the Torchvision library" in gptq
    assert "(toolchain_limits.yaml: gptqmodel 7.6.0" in gptq
    assert plans[90]["skipped"]["int4_awq"] == (
        "no runtime runs Qwen2_5_VLForConditionalGeneration in int4_awq on sm90: TensorRT-LLM (PyTorch "
        "backend): TensorRT-LLM model matrix: no row for model_type 'qwen2_5_vl'"
    )


def test_llava_gets_fp8_and_a_vlm_no_table_lists_is_refused_format_by_format() -> None:
    """Llava: FP8 (vLLM, TensorRT-LLM) and INT4 AWQ (TensorRT-LLM's LLaVA row); ModelOpt's VLM table has no
    NVFP4 for it. A VLM none of the tables lists is refused format by format, each naming the table."""
    plans = _runtimes(LLAVA, (90,))
    assert set(plans[90]["eligible"]) == {"fp8", "int4_awq"}
    assert "VLM: Llava × fp8 is supported" in plans[90]["eligible"]["fp8"].notes[0]
    assert "(LLaVA × W4A16 AWQ: Y)" in plans[90]["eligible"]["int4_awq"].notes[1]
    assert plans[90]["skipped"]["nvfp4"].startswith("ModelOpt HF table: VLM: Llava × nvfp4 is not listed (-)")
    assert "Qwen2VLVideoProcessor requires the Torchvision library" in plans[90]["skipped"]["gptq"]
    unlisted = plan(facts(IDEFICS3), [target_for(90)])
    assert unlisted.skipped is None and not unlisted.targets[0].eligible
    reasons = {s.format: s.reason for s in unlisted.targets[0].skipped}
    assert "ModelOpt HF table: no row for model_type 'idefics3'" in reasons["fp8"]


@pytest.mark.parametrize("policy", ["runtimes", "strict", "permissive"])
def test_every_pair_is_decided_once_under_every_policy(configs: dict[str, Any], policy: str) -> None:
    for config in (*configs.values(), QWEN3, QWEN3_MOE, RECURRENT_GEMMA):
        for target in plan_for(config, policy=policy).targets:
            decided = [e.format for e in target.eligible] + [s.format for s in target.skipped]
            assert sorted(decided) == sorted({*decided}) and len(decided) == 6
