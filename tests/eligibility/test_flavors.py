"""Jobs flavours as data: the table is validated, each SM goes to its cheapest flavour that fits, an SM with
no flavour is planned "not built", costs are estimates, and the table is checked against the Hub's list."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.eligibility.facts import build_facts
from bot.eligibility.flavors import load_flavors
from bot.eligibility.matrices import DATA_DIR
from bot.eligibility.planner import PlanOptions, plan
from bot.eligibility.specs import job_costs
from bot.eligibility.targets import target_for
from bot.errors import MatrixError

SMS = (80, 89, 90, 100, 120)


def _plan(config: dict[str, Any], sms: tuple[int, ...] = SMS, **changes: Any) -> Any:
    cfg = dict(config) | changes
    facts = build_facts(cfg, name="org/model", source="local", files=["model.safetensors"])
    return plan(facts, [target_for(sm) for sm in sms], PlanOptions(jobs=True))


def test_an_8b_llama_goes_to_the_cheapest_flavour_of_each_sm(configs: dict[str, Any]) -> None:
    result = _plan(configs["llama3.1"])
    flavours = {t.target.sm: t.flavor.name if t.flavor else None for t in result.targets}
    assert flavours == {80: "a100-large", 89: "l4x1", 90: "h200", 100: None, 120: "rtx-pro-6000"}
    sm100 = next(t for t in result.targets if t.target.sm == 100)
    assert not sm100.eligible
    assert {s.reason for s in sm100.skipped} == {"not built: no Jobs flavour has sm100"}
    sm89 = next(t for t in result.targets if t.target.sm == 89)
    assert set(sm89.estimates) == {e.format for e in sm89.eligible}
    assert all(e.usd > 0 for e in sm89.estimates.values())


def test_a_model_too_large_for_l4_goes_to_l40s(configs: dict[str, Any]) -> None:
    # 14B parameters in bf16 with the default 1.2 headroom need ~34 GB: not an L4 (24 GB), an L40S (48 GB)
    big = _plan(configs["llama3.1"], sms=(89,), num_hidden_layers=64)
    assert big.targets[0].flavor is not None and big.targets[0].flavor.name == "l40sx1"


def test_a_model_too_large_for_every_flavour_of_an_sm_says_so(configs: dict[str, Any]) -> None:
    huge = _plan(configs["llama3.1"], sms=(89, 90), num_hidden_layers=2000, hidden_size=8192)
    assert huge.skipped and "too large for every target GPU" in huge.skipped


def test_a_job_quantizes_once_on_the_cheapest_flavour(configs: dict[str, Any]) -> None:
    result = _plan(configs["llama3.1"])
    costs = job_costs(result)
    assert costs is not None
    flavors = load_flavors()
    params = result.facts.parameters
    l4, h200 = flavors.flavors["l4x1"], flavors.flavors["h200"]
    expected = flavors.quantize("fp8", params, l4).usd + flavors.engine(params, l4).usd
    expected += flavors.engine(params, h200).usd
    assert costs.estimate("fp8", [89, 90]) == pytest.approx(expected, abs=0.01)
    assert "https://docs.vllm.ai/projects/llm-compressor/" in costs.basis  # the estimate states its basis


def test_without_jobs_the_plan_has_no_flavours(configs: dict[str, Any]) -> None:
    facts = build_facts(configs["llama3.1"], name="org/model", source="local", files=["model.safetensors"])
    result = plan(facts, [target_for(89)], PlanOptions())
    assert result.flavors is None and result.targets[0].flavor is None
    assert job_costs(result) is None


def test_a_malformed_table_names_the_entry(tmp_path: Path) -> None:
    text = (DATA_DIR / "jobs_flavors.yaml").read_text().replace("gpu: L4, ", "gpu: L5, ", 1)
    path = tmp_path / "jobs_flavors.yaml"
    path.write_text(text)
    with pytest.raises(MatrixError, match=r"flavors\.l4x1\.gpu: unknown GPU 'L5'"):
        load_flavors(path)


def test_the_table_matches_what_hubsim_answers_and_a_difference_is_named(hubsim: Any) -> None:
    hardware = hubsim.api.list_jobs_hardware()
    flavors = load_flavors()
    assert flavors.compare(hardware) == []
    l4 = next(h for h in hardware if h.name == "l4x1")
    l4.unit_cost_usd *= 2
    assert flavors.compare(hardware) == [
        "Jobs flavour l4x1: the Hub prices it $1.60/h, jobs_flavors.yaml says $0.80/h"
    ]
