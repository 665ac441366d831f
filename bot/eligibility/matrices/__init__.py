"""The support matrices as data: ModelOpt's, TensorRT-LLM's model and hardware tables, GPTQModel's list.

Each source lives in one YAML file beside this module, naming its document and version; `load_matrices()`
reads them through pydantic models of each file (`bot.eligibility.matrices.reader`) and checks them
against each other (an unknown format, column, row alias or cell value is a `MatrixError` naming the file
and the entry). Updating a matrix after a release is an edit of its file, no code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from bot.eligibility.matrices.reader import Source, Strict, Text, fail, read_yaml, validated
from bot.eligibility.matrices.rows import RowMapping, RowMatch, parse_rows
from bot.eligibility.matrices.runtimes import RUNTIMES_FILE, Runtime, RuntimeCell, RuntimeTable, load_runtimes
from bot.eligibility.matrices.tables import FORMATS, OPTIONS, Cell, Matrix, MatrixFile, parse_matrix

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


class SMEntry(Strict):
    family: Text
    row: Text


class HardwareFile(MatrixFile):
    """TensorRT-LLM's hardware matrix, with the table of which SM is which of its rows."""

    sms: dict[int, SMEntry]


class GptqFile(Strict):
    source: Source
    label: Text
    model_types: list[Text]


def _parse_sms(path: Path, sms: dict[int, SMEntry], hardware: Matrix) -> dict[int, SMInfo]:
    for sm, entry in sms.items():
        if entry.row not in hardware.rows:
            raise fail(
                path, f"sms.{sm}.row", f"unknown row alias {entry.row!r}: the hardware matrix has no such row"
            )
    return {sm: SMInfo(sm, entry.family, entry.row) for sm, entry in sms.items()}


def _parse_gptq(path: Path, data: Any) -> GptqSupport:
    read = validated(GptqFile, path, data)
    return GptqSupport(
        path=path,
        label=read.label,
        document=read.source.document,
        version=read.source.version,
        model_types=frozenset(read.model_types),
    )


def _matrix(path: Path) -> Matrix:
    return parse_matrix(path, validated(MatrixFile, path, read_yaml(path)))


@lru_cache(maxsize=4)
def load_matrices(directory: Path = DATA_DIR) -> Matrices:
    """Read and validate the five data files in `directory` (cached: the planner calls this per plan)."""
    hardware_path = directory / "trtllm_hardware.yaml"
    read_hardware = validated(HardwareFile, hardware_path, read_yaml(hardware_path))
    hardware = parse_matrix(hardware_path, read_hardware)
    modelopt, models = (_matrix(directory / name) for name in ("modelopt.yaml", "trtllm_models.yaml"))
    rows_path = directory / "model_rows.yaml"
    rows = parse_rows(rows_path, read_yaml(rows_path), {"modelopt": modelopt, "trtllm": models})
    return Matrices(
        modelopt=modelopt,
        trtllm_models=models,
        trtllm_hardware=hardware,
        gptqmodel=_parse_gptq(directory / "gptqmodel.yaml", read_yaml(directory / "gptqmodel.yaml")),
        rows=rows,
        sms=_parse_sms(hardware_path, read_hardware.sms, hardware),
    )
