"""SpecMaker: a plan becomes the plain data handlers read, and that becomes one BuildSpec per format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.eligibility.facts import build_facts
from bot.eligibility.planner import PlanOptions, plan
from bot.eligibility.specs import SpecMaker, eligibility_of
from bot.eligibility.targets import target_for
from bot.settings import load_settings
from handlers.inputs import Eligibility

SHA = "0123456789abcdef0123456789abcdef01234567"


def _eligibility(config: dict[str, Any], sms: tuple[int, ...] = (86, 90, 100)) -> Eligibility:
    facts = build_facts(config, name="org/model", source="hub", revision=SHA, files=["model.safetensors"])
    return eligibility_of(plan(facts, [target_for(sm) for sm in sms], PlanOptions(policy="strict")))


@pytest.fixture
def maker(tmp_path: Path) -> SpecMaker:
    settings = load_settings(None, data_dir=tmp_path, build_recipe={"kv_cache": "fp8", "calib_samples": 16})
    return SpecMaker(settings, hub=None)  # type: ignore[arg-type]  (specs() asks nothing of the Hub)


def test_the_plan_reaches_handlers_as_formats_with_their_sms_and_reasons(configs) -> None:
    seen = _eligibility(configs["qwen2"])
    assert (seen.repo_id, seen.revision, seen.policy, seen.refused) == ("org/model", SHA, "strict", None)
    assert seen.target_sms == (86, 90, 100)
    # canonical format order; each format with the SMs that admit it (the seed matrices' answer for qwen2)
    assert seen.eligible == {
        "fp8": [90, 100], "int4_awq": [86, 90], "w4a8_awq": [90], "nvfp4": [100], "gptq": [86, 90],
    }  # fmt: skip
    assert [r.split(":")[0] for r in seen.skip_reasons("nvfp4")] == ["sm86", "sm90"]
    assert "int8_sq" in seen.skips and seen.skip_reasons("int8_sq")
    # and which runtimes load each (runtimes.yaml), for /formats
    assert set(seen.runs_with) == set(seen.eligible)
    assert seen.runs_with["w4a8_awq"] == "TensorRT-LLM (PyTorch backend) (sm89, sm90)"


def test_a_refused_model_gives_its_one_reason_for_every_format(configs) -> None:
    config = configs["qwen2"] | {"quantization_config": {"quant_method": "gptq"}}
    seen = _eligibility(config)
    assert seen.refused and "already quantized" in seen.refused and seen.eligible == {}
    assert seen.skip_reasons("fp8") == [seen.refused]


def test_specs_one_per_format_narrowed_to_the_formats_and_sms_asked(configs, maker: SpecMaker) -> None:
    seen = _eligibility(configs["qwen2"])
    specs = maker.specs(seen)
    assert [(s.format, s.target_sms) for s in specs] == [
        ("fp8", [90, 100]), ("int4_awq", [86, 90]), ("w4a8_awq", [90]), ("nvfp4", [100]), ("gptq", [86, 90]),
    ]  # fmt: skip
    narrowed = maker.specs(seen, formats=["gptq", "nvfp4"], sms=[90])
    assert [(s.format, s.target_sms) for s in narrowed] == [("gptq", [90])]  # nvfp4 has no sm90
    assert maker.specs(seen, sms=[75]) == []


def test_a_spec_is_pinned_keyed_and_placed_under_the_data_dir(configs, maker: SpecMaker, tmp_path) -> None:
    [fp8, gptq] = maker.specs(_eligibility(configs["qwen2"]), formats=["fp8", "gptq"])
    assert (fp8.repo_id, fp8.revision) == ("org/model", SHA)
    assert fp8.recipe.kv_cache == "fp8" and fp8.recipe.calib_samples == 16
    assert gptq.recipe.kv_cache != "fp8"  # GPTQ takes no KV-cache option from the configured recipe
    folder = tmp_path / "builds" / fp8.key()[:24]
    assert (fp8.work_dir, fp8.output_dir) == (folder / "work", folder / "out")
    assert fp8.key() != gptq.key() and fp8.toolchain == maker.toolchain


# ------------------------------------------------------------------------------ /quantize --calib datasets


def _dataset(hubsim, repo_factory, rows: int, **options) -> str:
    """A dataset on hubsim whose card declares a `train` split of `rows` rows."""
    repo = repo_factory("calib", repo_type="dataset", **options)
    card = f"---\ndataset_info:\n  splits:\n  - name: train\n    num_examples: {rows}\n---\n# Calibration\n"
    hubsim.api.upload_file(
        path_or_fileobj=card.encode(), path_in_repo="README.md", repo_id=repo, repo_type="dataset"
    )
    return repo


def test_calibration_datasets_are_checked_before_any_build(hubsim, repo_factory, tmp_path: Path) -> None:
    from bot.hub import Hub
    from handlers.inputs import Calibration

    settings = load_settings(
        None, data_dir=tmp_path, build_recipe={"calib_samples": 16}, calib_max_dataset_mb=1
    )
    maker = SpecMaker(settings, Hub(endpoint=hubsim.url, token=hubsim.token))
    good = _dataset(hubsim, repo_factory, 100)
    assert maker.calibration_refusal(Calibration(good)) is None
    assert "no split `validation` (it has `train`)" in maker.calibration_refusal(
        Calibration(good, split="validation")
    )
    assert "has no revision `v9`" in maker.calibration_refusal(Calibration(good, "v9"))
    assert "there is no dataset nobody/nothing" in maker.calibration_refusal(Calibration("nobody/nothing"))
    few = _dataset(hubsim, repo_factory, 3)
    assert "has 3 rows; a build calibrates on 16" in maker.calibration_refusal(Calibration(few))
    big = _dataset(hubsim, repo_factory, 100)
    hubsim.api.upload_file(
        path_or_fileobj=b"x" * 1_200_000, path_in_repo="data.txt", repo_id=big, repo_type="dataset"
    )
    assert "over the 1 MB" in maker.calibration_refusal(Calibration(big))
    gated = _dataset(hubsim, repo_factory, 100)
    hubsim.api.update_repo_settings(gated, gated="auto", repo_type="dataset")
    assert "is gated" in maker.calibration_refusal(Calibration(gated))


def test_a_calibration_asked_for_goes_into_the_recipe_and_the_key(configs, maker: SpecMaker) -> None:
    from handlers.inputs import Calibration

    seen = _eligibility(configs["qwen2"])
    [plain] = maker.specs(seen, formats=["gptq"])
    [asked] = maker.specs(seen, formats=["gptq"], calibration=Calibration("org/texts", "v1", "validation"))
    recipe = asked.recipe
    assert (recipe.calib_dataset, recipe.calib_revision, recipe.calib_split) == (
        "org/texts",
        "v1",
        "validation",
    )
    assert recipe.calib_hub_source()[3] == "text" and asked.key() != plain.key()
