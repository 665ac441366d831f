"""What runs a family: the data the runtimes policy adds to the seed matrices.

Three files beside this module: `runtime_models.yaml` (which architectures each runtime of runtimes.yaml
runs, by its own model list, or "by TensorRT-LLM's matrices"), `modelopt_hf.yaml` (ModelOpt's current LLM
and VLM support tables, with the model_types each row covers) and `toolchain_limits.yaml` (formats a
toolchain is measured not to produce for a family). `load_families()` reads and checks them against the
runtime table and the seed matrices; a typo is a `MatrixError` naming the file and the entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from bot.eligibility.matrices import load_matrices
from bot.eligibility.matrices.reader import Source, Strict, Text, fail, read_yaml, validated
from bot.eligibility.matrices.runtimes import load_runtimes
from bot.eligibility.matrices.tables import FORMATS, Matrix, MatrixFile, parse_matrix

DATA_DIR = Path(__file__).parent
_RUNTIME_KINDS = frozenset({"architectures", "matrices", "any_architecture"})


@dataclass(frozen=True)
class RuntimeModels:
    """The models one runtime runs: listed architectures, TensorRT-LLM's matrices, or any architecture."""

    runtime: str
    source: str
    architectures: frozenset[str] = frozenset()
    matrices: str | None = None
    any_architecture: str = ""
    but_not: frozenset[str] = frozenset()  # an any-architecture runtime's measured exceptions
    but_not_why: str = ""

    def listed(self, architectures: Iterable[str]) -> str | None:
        """The first of `architectures` this runtime lists (any but its exceptions, for an any-architecture
        runtime)."""
        archs = tuple(architectures)
        if self.any_architecture:
            return archs[0] if archs and not self.but_not.intersection(archs) else None
        return next((a for a in archs if a in self.architectures), None)


@dataclass(frozen=True)
class Limit:
    """A format a toolchain cannot produce for some model types, and what was seen."""

    formats: frozenset[str]
    model_types: frozenset[str]
    reason: str
    source: str
    vision_language: bool = False  # the limit holds for every vision-language model, whatever its type


@dataclass(frozen=True)
class ModelOptTable:
    """ModelOpt's current support table and which models each row covers."""

    matrix: Matrix
    model_types: Mapping[str, str]  # model_type → row
    seed_rows: Mapping[str, str]  # row of the seed's ModelOpt table → row here

    def rows_for(self, model_type: str | None, seed_rows: Iterable[str]) -> tuple[str, ...]:
        rows = [self.model_types[model_type]] if model_type and model_type in self.model_types else []
        rows += [self.seed_rows[r] for r in seed_rows if r in self.seed_rows]
        return tuple(dict.fromkeys(rows))


@dataclass(frozen=True)
class Families:
    runtimes: Mapping[str, RuntimeModels]
    modelopt: ModelOptTable
    limits: tuple[Limit, ...]

    def limit(self, fmt: str, model_type: str | None, vision: bool = False) -> Limit | None:
        return next(
            (
                x
                for x in self.limits
                if fmt in x.formats and (model_type in x.model_types or (vision and x.vision_language))
            ),
            None,
        )


class _ButNot(Strict):
    architectures: list[Text]
    why: Text


class _RuntimeEntry(Strict):
    """One runtime's entry: exactly one of architectures, matrices or any_architecture."""

    source: Source | None = None
    architectures: list[Text] | None = None
    matrices: Literal["trtllm"] | None = None
    any_architecture: Text | None = None
    but_not: _ButNot | None = None


class _RuntimeModelsFile(Strict):
    runtimes: dict[str, _RuntimeEntry]


class _ModelOptHfFile(MatrixFile):
    """ModelOpt's current table, with the model_types each row covers and the seed rows it stands for."""

    model_types: dict[str, list[Text]] | None = None
    seed_rows: dict[str, Text] | None = None


class _LimitEntry(Strict):
    formats: list[Text]
    model_types: list[Text] = []
    vision_language: bool = False
    reason: Text
    source: Text


class _LimitsFile(Strict):
    limits: list[_LimitEntry] | None


def _runtimes(path: Path, data: Any) -> dict[str, RuntimeModels]:
    read = validated(_RuntimeModelsFile, path, data)
    known = {r.id for r in load_runtimes().runtimes}
    result = {}
    for rid, spec in read.runtimes.items():
        entry = f"runtimes.{rid}"
        if rid not in known:
            raise fail(path, entry, f"unknown runtime (runtimes.yaml has {', '.join(sorted(known))})")
        given = [k for k in ("architectures", "matrices", "any_architecture") if getattr(spec, k) is not None]
        if len(given) != 1:
            raise fail(path, entry, f"give exactly one of {', '.join(sorted(_RUNTIME_KINDS))}")
        if spec.matrices is not None:
            if spec.source is not None:
                raise fail(path, f"{entry}.matrices", "only `matrices: trtllm` (the seeds name their source)")
            result[rid] = RuntimeModels(rid, "trtllm_models.yaml, trtllm_hardware.yaml", matrices="trtllm")
            continue
        if spec.source is None:
            raise fail(path, f"{entry}.source", "missing")
        source = f"{spec.source.document} ({spec.source.version})"
        if spec.any_architecture is not None:
            but_not = spec.but_not or _ButNot(architectures=[], why="-")
            result[rid] = RuntimeModels(
                rid,
                source,
                any_architecture=spec.any_architecture,
                but_not=frozenset(but_not.architectures),
                but_not_why=" ".join(but_not.why.split()),
            )
        elif spec.but_not is not None:
            raise fail(path, f"{entry}.but_not", "only an any_architecture runtime has exceptions")
        else:
            result[rid] = RuntimeModels(rid, source, architectures=frozenset(spec.architectures or ()))
    for rid in sorted(known - result.keys()):
        raise fail(path, f"runtimes.{rid}", "missing: every runtime of runtimes.yaml says what it runs")
    return result


def _modelopt(path: Path, data: Any, seed: Matrix) -> ModelOptTable:
    read = validated(_ModelOptHfFile, path, data)
    matrix = parse_matrix(path, read)
    types: dict[str, str] = {}
    for row, listed in (read.model_types or {}).items():
        if row not in matrix.rows:
            raise fail(path, f"model_types.{row}", "unknown row (not in rows)")
        for model_type in listed:
            if model_type in types:
                raise fail(
                    path, f"model_types.{row}", f"{model_type!r} is already in row {types[model_type]!r}"
                )
            types[model_type] = row
    seed_rows: dict[str, str] = {}
    for row, seed_row in (read.seed_rows or {}).items():
        if row not in matrix.rows or seed_row not in seed.rows:
            raise fail(path, f"seed_rows.{row}", f"unknown row here, or {seed_row!r} not in {seed.path.name}")
        seed_rows[seed_row] = row
    return ModelOptTable(matrix, types, seed_rows)


def _limits(path: Path, data: Any) -> tuple[Limit, ...]:
    read = validated(_LimitsFile, path, data)
    limits = []
    for i, raw in enumerate(read.limits or []):
        for fmt in raw.formats:
            if fmt not in FORMATS:
                raise fail(path, f"limits[{i}].formats", f"unknown format {fmt!r}")
        limits.append(
            Limit(
                frozenset(raw.formats),
                frozenset(raw.model_types),
                " ".join(raw.reason.split()),
                raw.source,
                raw.vision_language,
            )
        )
    return tuple(limits)


@lru_cache(maxsize=4)
def load_families(directory: Path = DATA_DIR) -> Families:
    """Read and check the three files in `directory` against the runtime table and the seed matrices there
    (cached: the planner calls this per plan)."""
    hf = directory / "modelopt_hf.yaml"
    return Families(
        runtimes=_runtimes(directory / "runtime_models.yaml", read_yaml(directory / "runtime_models.yaml")),
        modelopt=_modelopt(hf, read_yaml(hf), load_matrices(directory).modelopt),
        limits=_limits(directory / "toolchain_limits.yaml", read_yaml(directory / "toolchain_limits.yaml")),
    )
