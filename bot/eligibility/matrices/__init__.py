"""The support matrices as data: ModelOpt's, TensorRT-LLM's model and hardware tables, GPTQModel's list.

Each source lives in one YAML file beside this module, naming its document and version; `load_matrices()`
reads and validates them all (an unknown format, column, row alias or cell value is a `MatrixError` naming
the file and the entry). Updating a matrix after a release is an edit of its file, no code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from bot.eligibility.matrices.reader import read_yaml
from bot.eligibility.matrices.rows import RowMapping, RowMatch, parse_rows
from bot.eligibility.matrices.runtimes import RUNTIMES_FILE, Runtime, RuntimeCell, RuntimeTable, load_runtimes
from bot.eligibility.matrices.tables import FORMATS, OPTIONS, Cell, Checker, Matrix, parse_matrix
from bot.errors import MatrixError

__all__ = [
    "DATA_DIR",
    "FORMATS",
    "OPTIONS",
    "Cell",
    "GptqSupport",
    "Matrices",
    "Matrix",
    "RUNTIMES_FILE",
    "RowMapping",
    "RowMatch",
    "Runtime",
    "RuntimeCell",
    "RuntimeTable",
    "SMInfo",
    "load_matrices",
    "load_runtimes",
    "read_yaml",
]

DATA_DIR = Path(__file__).parent


@dataclass(frozen=True)
class SMInfo:
    """Where an SM sits: its GPU family and its row in the hardware matrix."""

    sm: int
    family: str
    row: str


@dataclass(frozen=True)
class GptqSupport:
    """The model types GPTQModel has a definition for (gptqmodel.yaml)."""

    path: Path
    label: str
    document: str
    version: str
    model_types: frozenset[str]


@dataclass(frozen=True)
class Matrices:
    """Everything the planner consults, validated together (rows are checked against their matrices)."""

    modelopt: Matrix
    trtllm_models: Matrix
    trtllm_hardware: Matrix
    gptqmodel: GptqSupport
    rows: RowMapping
    sms: Mapping[int, SMInfo]


def _parse_sms(path: Path, data: Any, hardware: Matrix) -> dict[int, SMInfo]:
    check = Checker(path)
    sms = {}
    for sm, spec in check.mapping(data, "sms").items():
        entry = f"sms.{sm}"
        if not isinstance(sm, int) or isinstance(sm, bool):
            raise check.fail(entry, "an SM is an integer such as 90")
        spec = check.mapping(spec, entry)
        check.keys(spec, frozenset({"family", "row"}), f"{entry}.", frozenset({"family", "row"}))
        row = check.text(spec["row"], f"{entry}.row")
        if row not in hardware.rows:
            raise check.fail(
                f"{entry}.row", f"unknown row alias {row!r}: the hardware matrix has no such row"
            )
        sms[sm] = SMInfo(sm, check.text(spec["family"], f"{entry}.family"), row)
    return sms


def _parse_gptq(path: Path, data: Any) -> GptqSupport:
    check = Checker(path)
    data = check.mapping(data, "top level")
    check.keys(
        data, frozenset({"source", "label", "model_types"}), "", frozenset({"source", "label", "model_types"})
    )
    source = check.mapping(data["source"], "source")
    types = check.text_list(data["model_types"], "model_types")
    return GptqSupport(
        path=path,
        label=check.text(data["label"], "label"),
        document=check.text(source.get("document"), "source.document"),
        version=check.text(str(source.get("version", "")), "source.version"),
        model_types=frozenset(types),
    )


@lru_cache(maxsize=4)
def load_matrices(directory: Path = DATA_DIR) -> Matrices:
    """Read and validate the five data files in `directory` (cached: the planner calls this per plan)."""
    hardware_path = directory / "trtllm_hardware.yaml"
    hardware_data = read_yaml(hardware_path)
    modelopt = parse_matrix(directory / "modelopt.yaml", read_yaml(directory / "modelopt.yaml"))
    models = parse_matrix(directory / "trtllm_models.yaml", read_yaml(directory / "trtllm_models.yaml"))
    hardware = parse_matrix(hardware_path, hardware_data, extra_keys=frozenset({"sms"}))
    if not isinstance(hardware_data.get("sms"), dict):
        raise MatrixError(f"{hardware_path.name}: sms: missing (the SM → hardware row table)")
    rows_path = directory / "model_rows.yaml"
    rows = parse_rows(rows_path, read_yaml(rows_path), {"modelopt": modelopt, "trtllm": models})
    return Matrices(
        modelopt=modelopt,
        trtllm_models=models,
        trtllm_hardware=hardware,
        gptqmodel=_parse_gptq(directory / "gptqmodel.yaml", read_yaml(directory / "gptqmodel.yaml")),
        rows=rows,
        sms=_parse_sms(hardware_path, hardware_data["sms"], hardware),
    )
