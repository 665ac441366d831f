"""The BuildSpec / Manifest contract: validation, a stable key, JSON round trips, no torch on the bot side."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from builders.spec import BuildSpec, Manifest, Progress, utcnow

SHA = "a" * 40
TOOLCHAIN = {"torch": "2.13.0", "transformers": "5.14.1", "modelopt": "0.47.0", "gptqmodel": "7.6.0"}


def spec(**fields: object) -> BuildSpec:
    base: dict[str, object] = {
        "repo_id": "org/model",
        "revision": SHA,
        "format": "fp8",
        "work_dir": "/tmp/w",
        "output_dir": "/tmp/o",
        "toolchain": TOOLCHAIN,
    }
    return BuildSpec.model_validate(base | fields)


def test_key_is_stable_and_ignores_where_the_build_runs() -> None:
    a = spec()
    b = spec(work_dir="/elsewhere", output_dir="/other", target_sms=[90, 89], engine={"max_batch_size": 64})
    assert a.key() == b.key() == BuildSpec.model_validate_json(a.model_dump_json()).key()
    assert len(a.key()) == 64


@pytest.mark.parametrize(
    "change",
    [
        {"revision": "b" * 40},
        {"repo_id": "org/other"},
        {"format": "int4_awq"},
        {"recipe": {"calib_samples": 64}},
        {"recipe": {"kv_cache": "fp8"}},
        {"toolchain": TOOLCHAIN | {"modelopt": "0.48.0"}},
    ],
)
def test_key_changes_with_what_the_artifact_depends_on(change: dict) -> None:
    assert spec(**change).key() != spec().key()


def test_key_of_a_format_ignores_other_formats_knobs_and_toolchains() -> None:
    assert spec(recipe={"gptq_group_size": 32}).key() == spec().key()
    assert spec(toolchain=TOOLCHAIN | {"gptqmodel": "9.9"}).key() == spec().key()
    gptq = spec(format="gptq")
    assert gptq.key() != spec(format="gptq", recipe={"gptq_group_size": 32}).key()
    assert gptq.key() == spec(format="gptq", toolchain=TOOLCHAIN | {"modelopt": "9.9"}).key()


def test_awq_block_size_enters_only_awq_keys() -> None:
    assert spec(recipe={"awq_block_size": 64}).key() == spec().key()
    assert spec(format="int4_awq", recipe={"awq_block_size": 64}).key() != spec(format="int4_awq").key()


def test_local_dir_key_follows_the_folder_content(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    local = spec(repo_id=None, revision=None, local_dir=str(tmp_path))
    first = local.key()
    assert local.key() == first
    (tmp_path / "model.safetensors").write_bytes(b"x" * 10)
    assert local.key() != first


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"format": "int3"}, "format"),
        ({"revision": "main"}, "40-hex"),
        ({"revision": None}, "40-hex"),
        ({"local_dir": "/tmp/m"}, "exactly one"),
        ({"repo_id": None, "revision": None}, "exactly one"),
        ({"repo_id": "not a repo"}, "repo id"),
        ({"format": "gptq", "recipe": {"kv_cache": "fp8"}}, "GPTQ"),
        ({"format": "fp8", "recipe": {"kv_cache": "int8"}}, "int8_sq"),
        ({"format": "int4_awq", "recipe": {"awq_block_size": 100}}, "awq_block_size"),
        ({"recipe": {"calib_samples": 0}}, "calib_samples"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_specs_are_refused_with_the_reason(fields: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        spec(**fields)


def test_int8_kv_cache_is_accepted_for_int8_sq() -> None:
    assert spec(format="int8_sq", recipe={"kv_cache": "int8"}).recipe.kv_cache == "int8"


def test_spec_and_manifest_round_trip_through_json_files(tmp_path: Path) -> None:
    s = spec(target_sms=[90])
    assert BuildSpec.read(s.write(tmp_path / "spec.json")) == s
    m = Manifest(key=s.key(), started_at=utcnow(), spec=s)
    assert Manifest.read(m.write(tmp_path / "manifest.json")) == m
    assert not list(tmp_path.glob(".*"))  # atomic writes leave no temporary files


def test_require_spec_names_a_manifest_whose_spec_did_not_validate() -> None:
    s = spec()
    assert Manifest(key=s.key(), started_at=utcnow(), spec=s).require_spec() is s
    with pytest.raises(ValueError, match="records no build spec"):
        Manifest(status="failed", started_at=utcnow()).require_spec()


def test_engine_seq_len_defaults_to_input_plus_output() -> None:
    assert spec(engine={"max_input_len": 100, "max_output_len": 28}).engine.seq_len == 128
    assert spec(engine={"max_input_len": 100, "max_seq_len": 300}).engine.seq_len == 300


def test_progress_lines_parse_and_map_to_overall_progress() -> None:
    p = Progress.parse_line('{"stage": "quantize", "fraction": 0.5, "message": "batch 1/2"}')
    assert p is not None and p.message == "batch 1/2"
    assert p.overall == pytest.approx((2 + 0.5) / 7)
    assert Progress.parse_line("Loading weights: 100%") is None
    assert Progress.parse_line('{"stage": "x", "fraction": 2}') is None


def test_spec_module_imports_no_toolchain() -> None:
    code = (
        "import sys, builders.spec as s; s.BuildSpec; s.installed_toolchain();"
        "bad = [m for m in ('torch', 'transformers', 'modelopt', 'gptqmodel') if m in sys.modules];"
        "sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
