"""The runtime table (runtimes.yaml): complete, sourced, and strict about typos."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest
import yaml

from bot.eligibility.matrices import FORMATS, RUNTIMES_FILE, load_matrices, load_runtimes
from bot.eligibility.matrices.runtimes import parse_runtimes
from bot.errors import MatrixError


def _loaders(fmt: str) -> set[str]:
    return {r.id for r, _ in load_runtimes().loaders(fmt)}


def test_which_runtime_loads_which_format_as_their_detection_code_says() -> None:
    assert _loaders("fp8") == {"vllm", "sglang", "trtllm_pytorch", "tgi"}
    assert _loaders("nvfp4") == {"vllm", "sglang", "trtllm_pytorch"}
    assert _loaders("int4_awq") == {"trtllm_pytorch"}
    assert _loaders("w4a8_awq") == {"trtllm_pytorch"}
    assert _loaders("int8_sq") == {"trtllm_build"}
    assert _loaders("gptq") == {"vllm", "sglang", "transformers", "tgi"}


def test_every_cell_names_the_runtime_file_and_version_and_loading_cells_their_detection() -> None:
    table = load_runtimes()
    for runtime in table.runtimes:
        assert set(runtime.cells) == set(FORMATS)
        for cell in runtime.cells.values():
            assert cell.source_file and cell.source_version
            assert bool(cell.detect) == cell.loads
            assert cell.loads or cell.why


def test_sms_of_a_cell() -> None:
    table = load_runtimes()
    w4a8 = table.runtime("trtllm_pytorch").cells["w4a8_awq"]
    assert (w4a8.runs_on(90), w4a8.runs_on(100), w4a8.sm_text) == (True, False, "sm89, sm90")
    fp8 = table.runtime("sglang").cells["fp8"]
    assert (fp8.runs_on(86), fp8.runs_on(89), fp8.sm_text) == (False, True, "sm89+")
    assert table.runtime("transformers").cells["gptq"].sm_text == "any GPU, or CPU"


def test_tensorrt_llm_pytorch_cells_claim_exactly_the_hardware_matrix_they_cite() -> None:
    """The planner skips a format where TensorRT-LLM's hardware matrix says no; the table must not advise it
    there (int4_awq and w4a8_awq have no Blackwell row marked Y)."""
    matrices, table = load_matrices(), load_runtimes()
    hardware = matrices.trtllm_hardware
    for fmt, cell in table.runtime("trtllm_pytorch").cells.items():
        column = hardware.column_for(fmt)
        if not cell.loads or column is None:
            continue
        for sm, info in matrices.sms.items():
            assert cell.runs_on(sm) == hardware.cell(info.row, column).supported, (fmt, sm)
    awq = table.runtime("trtllm_pytorch").cells["int4_awq"]
    assert awq.sm_text == "sm80, sm86, sm87, sm89, sm90" and not awq.runs_on(100)


def test_transformers_cells_cite_the_transformers_the_builders_run() -> None:
    """Builders pin transformers 5.14 (pyproject); a cell read against another line would say nothing of
    what a user of these releases gets."""
    builders_line = ".".join(metadata.version("transformers").split(".")[:2])
    for cell in load_runtimes().runtime("transformers").cells.values():
        assert f"transformers {builders_line}" in cell.source_version


def test_a_runtime_that_loads_a_format_wrongly_says_so_in_its_verdict() -> None:
    table = load_runtimes()
    fp8 = table.runtime("transformers").cells["fp8"]
    assert fp8.wrong and fp8.verdict == "no: loads wrongly" and "unrelated text" in fp8.why
    assert table.runtime("vllm").cells["int4_awq"].verdict == "no"
    assert table.runtime("vllm").cells["gptq"].verdict == "yes"


def test_gptq_cells_say_which_kernel_runs_on_which_sms() -> None:
    table = load_runtimes()
    vllm, sglang, tgi = (table.runtime(r).cells["gptq"] for r in ("vllm", "sglang", "tgi"))
    assert vllm.sm_text == "sm75+" and "Machete" in vllm.note and "Marlin (sm75+)" in vllm.note
    assert sglang.sm_text == "sm80+" and "removed its non-Marlin" in sglang.note
    assert tgi.runs_on(75) and not tgi.runs_on(100)
    assert "Marlin on sm80+" in tgi.note and "Triton GPTQ kernel on sm75" in tgi.note


def test_every_runtime_names_the_transformers_line_it_runs_on_with_its_source() -> None:
    table = load_runtimes()
    lines = {r.id: r.transformers.line for r in table.runtimes}
    assert lines == {
        "vllm": "5.19", "sglang": "5.19", "trtllm_pytorch": "4.57", "trtllm_build": "4.57",
        "transformers": "5.14", "tgi": "4.51",
    }  # fmt: skip
    for runtime in table.runtimes:
        assert runtime.transformers.source_file and runtime.transformers.line in runtime.transformers.source
    assert "4.57.3" in table.runtime("trtllm_pytorch").transformers.source_version  # requirements.txt's pin


def test_the_lines_a_format_is_read_under_are_those_of_the_runtimes_that_load_it() -> None:
    table = load_runtimes()
    assert table.transformers_lines("int4_awq") == {"4.57": ["TensorRT-LLM (PyTorch backend)"]}
    assert table.transformers_lines("fp8") == {  # TGI's default weight loader takes FP8 weights too
        "4.51": ["Text Generation Inference"],
        "4.57": ["TensorRT-LLM (PyTorch backend)"],
        "5.19": ["vLLM", "SGLang"],
    }
    assert table.transformers_lines("int8_sq") == {"4.57": ["trtllm-build (TensorRT-LLM ≤ 1.2)"]}
    assert list(table.transformers_lines("gptq")) == ["4.51", "5.14", "5.19"]  # in version order


def _broken(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load(RUNTIMES_FILE.read_text())
    edit(data)
    path = tmp_path / "runtimes.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (lambda d: d["runtimes"][0]["cells"].update(fp16={"loads": False}), "vllm.cells.fp16"),
        (lambda d: d["runtimes"][0]["cells"].pop("gptq"), "vllm.cells.gptq: missing"),
        (lambda d: d["runtimes"][0]["cells"]["fp8"].pop("detect"), "vllm.cells.fp8.detect"),
        (lambda d: d["runtimes"][0]["cells"]["fp8"].update(min_sm="89"), "vllm.cells.fp8.min_sm"),
        (lambda d: d["runtimes"][1].update(id="vllm"), "duplicate runtime"),
        (lambda d: d["runtimes"][0]["cells"]["int4_awq"].pop("why"), "vllm.cells.int4_awq.why"),
        (lambda d: d["runtimes"][0].update(speed="fast"), "runtimes[0].speed"),
        (lambda d: d["runtimes"][0]["cells"]["fp8"].update(wrong=True), "vllm.cells.fp8.wrong"),
        (lambda d: d["runtimes"][0]["cells"]["int4_awq"].update(wrong="yes"), "vllm.cells.int4_awq.wrong"),
        (lambda d: d["runtimes"][0].pop("transformers"), "runtimes[0].transformers: missing"),
        (lambda d: d["runtimes"][0]["transformers"].update(line="4.57.6"), "vllm.transformers.line"),
        (lambda d: d["runtimes"][2]["transformers"].pop("source"), "trtllm_pytorch.transformers.source"),
    ],
)
def test_malformed_table_is_refused_naming_file_and_entry(tmp_path: Path, edit, where: str) -> None:
    path = _broken(tmp_path, edit)
    with pytest.raises(MatrixError) as caught:
        parse_runtimes(path, yaml.safe_load(path.read_text()))
    assert str(caught.value).startswith("runtimes.yaml: ") and where in str(caught.value)
