"""The support matrices as shipped data: complete, sourced, and refused loudly when malformed."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.eligibility.matrices import FORMATS, load_matrices
from bot.errors import ConfigError, MatrixError

EditCopy = Callable[[str, Callable[[str], str]], Path]


def test_shipped_matrices_hold_every_row_and_column_of_the_seeds() -> None:
    m = load_matrices()
    assert len(m.modelopt.rows) == 34 and m.modelopt.columns == (
        "fp8",
        "int8_sq",
        "int4_awq",
        "w4a8_awq",
        "nvfp4",
    )
    assert len(m.trtllm_models.rows) == 20 and len(m.trtllm_models.columns) == 10
    assert list(m.trtllm_hardware.rows) == [
        "Blackwell(sm120)",
        "Blackwell(sm100)",
        "Hopper",
        "Ada Lovelace",
        "Ampere",
    ]
    assert sorted(m.modelopt.footnotes) == [1, 2, 3, 4, 5, 6]
    # cells keep their verbatim text and footnote references
    cell = m.modelopt.cell("LLAMA 3, 3.1, 3.3", "w4a8_awq")
    assert (cell.text, cell.symbol, cell.meaning, cell.footnotes) == (
        "✅<sup>3</sup>",
        "✅",
        "supported",
        (3,),
    )
    assert m.modelopt.row_footnotes["QWen 2, 2.5"] == (4,)
    assert m.modelopt.column_footnotes["nvfp4"] == (5,)
    assert m.modelopt.cell("QWen MOE", "int8_sq").meaning == "not listed"
    assert m.trtllm_models.cell("Mistral", "NVFP4").meaning == "not listed"


def test_each_file_names_its_source_document_and_version() -> None:
    m = load_matrices()
    assert m.trtllm_models.version == m.trtllm_hardware.version == "1.1.0rc4"
    assert "Quantization" in m.trtllm_models.document
    assert "Supported Models" in m.modelopt.document and m.modelopt.version
    assert m.gptqmodel.version == "7.6.0" and "MODEL_MAP" in m.gptqmodel.document


def test_canonical_formats_map_to_the_columns_of_the_design_table() -> None:
    m = load_matrices()
    assert set(FORMATS) == {"fp8", "int8_sq", "int4_awq", "w4a8_awq", "nvfp4", "gptq"}
    assert dict(m.trtllm_models.formats) == {
        "nvfp4": "NVFP4",
        "fp8": "FP8(per tensor)",
        "w4a8_awq": "W4A8 AWQ",
        "int4_awq": "W4A16 AWQ",
        "gptq": "W4A16 GPTQ",
    }
    assert m.trtllm_models.column_for("int8_sq") is None  # legacy engine path only
    assert m.trtllm_models.column_for("kv_cache_fp8") == "FP8 KV Cache"
    assert set(m.modelopt.formats) == set(FORMATS) - {"gptq"}


@pytest.mark.parametrize(
    ("sms", "family", "row"),
    [
        ((80, 86, 87), "Ampere", "Ampere"),
        ((89,), "Ada Lovelace", "Ada Lovelace"),
        ((90,), "Hopper", "Hopper"),
        ((100, 103), "Blackwell", "Blackwell(sm100)"),
        ((120, 121), "Blackwell", "Blackwell(sm120)"),
    ],
)
def test_sm_families(sms: tuple[int, ...], family: str, row: str) -> None:
    m = load_matrices()
    for sm in sms:
        assert (m.sms[sm].family, m.sms[sm].row) == (family, row)
    assert set(m.sms) == {80, 86, 87, 89, 90, 100, 103, 120, 121}


def _sub(pattern: str, replacement: str, count: int = 1) -> Callable[[str], str]:
    return lambda text: re.sub(pattern, replacement, text, count=count, flags=re.MULTILINE)


@pytest.mark.parametrize(
    ("filename", "edit", "expected"),
    [
        pytest.param(
            "modelopt.yaml",
            _sub(r"^  nvfp4: nvfp4$", "  nvfp4: fp4"),
            r"^modelopt\.yaml: formats\.nvfp4: unknown format 'fp4'",
            id="unknown-format",
        ),
        pytest.param(
            "trtllm_models.yaml",
            _sub(r"^  NVFP4: nvfp4$", "  NVFP5: nvfp4"),
            r"^trtllm_models\.yaml: formats\.NVFP5: unknown column 'NVFP5'",
            id="unknown-column",
        ),
        pytest.param(
            "trtllm_hardware.yaml",
            _sub(r"^  FP8 KV Cache: kv_cache_fp8$", "  FP8 KV Cache: kv_cache_int2"),
            r"^trtllm_hardware\.yaml: options\.FP8 KV Cache: unknown option 'kv_cache_int2'",
            id="unknown-option",
        ),
        pytest.param(
            "model_rows.yaml",
            _sub(r"^    modelopt: Mistral$", "    modelopt: Mistrale"),
            r"^model_rows\.yaml: model_types\.mistral\.modelopt: unknown row alias 'Mistrale'",
            id="unknown-row-alias",
        ),
        pytest.param(
            "model_rows.yaml",
            _sub(r'^      - row: \["LLaMA 3", "LLaMA"\]$', '      - row: ["LLaMA 3", "LLaMA 5"]'),
            r"^model_rows\.yaml: model_types\.llama\.trtllm\[0\]\.row: unknown row alias 'LLaMA 5'",
            id="unknown-row-alias-in-rule",
        ),
        pytest.param(
            "model_rows.yaml",
            _sub(r"^    trtllm: Mistral$", "    tensorrt: Mistral"),
            r"^model_rows\.yaml: model_types\.mistral\.tensorrt: unknown matrix",
            id="unknown-matrix",
        ),
        pytest.param(
            "model_rows.yaml",
            _sub(r"when: \{hidden_size: \{at_least: 16384\}\}", "when: {hidden_size: {bigger: 16384}}"),
            r"^model_rows\.yaml: model_types\.nemotron-nas\.modelopt\[0\]\.when\.hidden_size: expected a",
            id="unknown-operator",
        ),
        pytest.param(
            "modelopt.yaml",
            _sub(r'^(  - \["Mistral", +"✅", "✅", "✅", )"❌"', r'\1"✔"'),
            r"^modelopt\.yaml: rows\[6\] 'Mistral', column 'w4a8_awq': unknown cell value '✔'",
            id="unknown-cell",
        ),
        pytest.param(
            "trtllm_models.yaml",
            _sub(r'^(  - \["Mistral", +)"\.", ', r'\1"N", '),
            r"^trtllm_models\.yaml: rows\[9\] 'Mistral', column 'NVFP4': unknown cell value 'N'",
            id="unknown-cell-trtllm",
        ),
        pytest.param(
            "modelopt.yaml",
            _sub(r'^(  - \["GPTJ", +"✅", "✅", "✅", "✅"), "-"\]', r"\1]"),
            r"^modelopt\.yaml: rows\[0\] \['GPTJ'\]: has 5 cells, the header has 6",
            id="short-row",
        ),
        pytest.param(
            "modelopt.yaml",
            _sub(r'"✅<sup>3</sup>", "✅"\]', r'"✅<sup>9</sup>", "✅"]'),
            r"^modelopt\.yaml: rows\[2\] 'LLAMA 3, 3\.1, 3\.3', column 'w4a8_awq': refers to footnote 9",
            id="unknown-footnote",
        ),
        pytest.param(
            "trtllm_hardware.yaml",
            _sub(r'^(  - \[)"Ampere"', r'\1"Hopper"'),
            r"^trtllm_hardware\.yaml: rows\[4\] 'Hopper': duplicate row",
            id="duplicate-row",
        ),
        pytest.param(
            "trtllm_hardware.yaml",
            _sub(r"^  89: \{family: Ada Lovelace, row: Ada Lovelace\}$", "  89: {family: Ada, row: Ada}"),
            r"^trtllm_hardware\.yaml: sms\.89\.row: unknown row alias 'Ada'",
            id="unknown-sm-row",
        ),
        pytest.param(
            "model_rows.yaml",
            _sub(r"^  mixtral:$", "  mistral:"),
            r"^model_rows\.yaml: line \d+: not valid YAML: duplicate key 'mistral'",
            id="duplicate-key",
        ),
        pytest.param(
            "modelopt.yaml",
            _sub(r"^legend:$", "legends:"),
            r"^modelopt\.yaml: legends: unknown key",
            id="unknown-top-level-key",
        ),
        pytest.param(
            "gptqmodel.yaml",
            _sub(r"^  - llama$", "  - [llama]"),
            r"^gptqmodel\.yaml: model_types\[\d+\]: expected a non-empty string",
            id="gptq-list-entry",
        ),
    ],
)
def test_malformed_file_is_refused_naming_file_and_entry(
    matrix_copy: EditCopy, filename: str, edit: Callable[[str], str], expected: str
) -> None:
    folder = matrix_copy(filename, edit)
    with pytest.raises(MatrixError) as caught:
        load_matrices(folder)
    assert re.search(expected, str(caught.value)), str(caught.value)
    assert isinstance(caught.value, ConfigError) and caught.value.exit_code == 2
    assert "\n" not in str(caught.value)


def test_adding_a_row_is_a_data_edit_only(matrix_copy: EditCopy) -> None:
    """A new release's row (and its mapping) needs no code: edit the two data files."""
    folder = matrix_copy(
        "trtllm_models.yaml",
        _sub(
            r'^(  - \["Nougat",.*)$', r'\1\n  - ["Gemma 2", ".", ".", "Y", ".", ".", "Y", ".", "Y", ".", "."]'
        ),
    )
    rows = (folder / "model_rows.yaml").read_text(encoding="utf-8")
    (folder / "model_rows.yaml").write_text(
        rows.replace(
            "  gemma2:\n    modelopt: null\n    trtllm: null",
            "  gemma2:\n    modelopt: null\n    trtllm: Gemma 2",
        )
    )
    m = load_matrices(folder)
    assert m.trtllm_models.cell("Gemma 2", "FP8(per tensor)").supported
    assert m.rows.resolve("trtllm", "gemma2", (), {}, "google/gemma-2-9b").rows == ("Gemma 2",)
