"""The KV-cache default of a build: FP8 where TensorRT-LLM's matrices mark FP8 KV cache for the model on
every target SM and the format takes it (as ModelOpt's hf_ptq defaults), unless someone turned it off."""

from __future__ import annotations

from typing import Any

from test_planner import plan_for

from bot.eligibility.specs import eligibility_of, kv_cache_default


def test_fp8_where_the_matrices_mark_it(configs: dict[str, Any]) -> None:
    result = eligibility_of(plan_for(configs["mistral"], (90, 89)))
    kv, why = kv_cache_default(result, "fp8", [90, 89])
    assert kv == "fp8" and why == (
        "fp8 by default: TensorRT-LLM's matrices mark FP8 KV cache for mistral on sm90, sm89"
    )


def test_none_for_formats_that_take_no_fp8_kv_cache(configs: dict[str, Any]) -> None:
    result = eligibility_of(plan_for(configs["qwen2"], (90,)))
    assert kv_cache_default(result, "gptq", [90])[0] == "none"
    assert kv_cache_default(result, "int8_sq", [90]) == (
        "none",
        "not quantized: int8_sq takes no FP8 KV cache by default",
    )


def test_none_where_the_matrices_do_not_mark_it(configs: dict[str, Any]) -> None:
    result = eligibility_of(plan_for(configs["granite"], (90,)))
    kv, why = kv_cache_default(result, "fp8", [90])
    assert kv == "none" and "do not mark FP8 KV cache for granite on sm90" in why


def test_an_opt_out_wins_and_is_named(configs: dict[str, Any]) -> None:
    result = eligibility_of(plan_for(configs["mistral"], (90,)))
    assert kv_cache_default(result, "fp8", [90], off="/quantize --kv-cache none") == (
        "none",
        "not quantized: turned off by /quantize --kv-cache none",
    )


def test_only_the_sms_a_format_is_eligible_on_count(configs: dict[str, Any]) -> None:
    """FP8 weights are not eligible on Ampere, so sm80 does not veto fp8's KV default; int4_awq is
    eligible on both, and both hardware rows mark FP8 KV cache."""
    result = eligibility_of(plan_for(configs["mistral"], (80, 90)))
    kv, why = kv_cache_default(result, "fp8", [80, 90])
    assert (kv, why.endswith("mark FP8 KV cache for mistral on sm90")) == ("fp8", True)
    kv, why = kv_cache_default(result, "int4_awq", [80, 90])
    assert (kv, why.endswith("mark FP8 KV cache for mistral on sm80, sm90")) == ("fp8", True)
