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

import yaml

from bot.eligibility.matrices.rows import RowMapping, RowMatch, parse_rows
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
    "RowMapping",
    "RowMatch",
    "SMInfo",
    "load_matrices",
    "read_yaml",
]

DATA_DIR = Path(__file__).parent

_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_BaseLoader):
    """A safe YAML loader that refuses duplicate keys (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


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


def read_yaml(path: Path) -> Any:
    """A YAML data file, strictly (duplicate keys refused); a `MatrixError` names the file and line."""
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)  # noqa: S506 (safe loader)
    except FileNotFoundError:
        raise MatrixError(f"{path.name}: missing support-matrix file {path}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "file"
        raise MatrixError(
            f"{path.name}: {where}: not valid YAML: {getattr(e, 'problem', None) or e}"
        ) from None


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


from bot.eligibility.matrices.runtimes import RUNTIMES_FILE, Runtime, RuntimeCell, RuntimeTable, load_runtimes  # noqa: E402

__all__ += ["RUNTIMES_FILE", "Runtime", "RuntimeCell", "RuntimeTable", "load_runtimes"]
from bot.eligibility.matrices.families import Families, load_families  # noqa: E402

__all__ += ["Families", "load_families"]
