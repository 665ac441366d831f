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
from typing import Any

from bot.eligibility.matrices.runtimes import load_runtimes
from bot.eligibility.matrices.tables import FORMATS, Checker, Matrix, parse_matrix

DATA_DIR = Path(__file__).parent
_RUNTIME_KINDS = frozenset({"architectures", "matrices", "any_architecture"})
_BUT_NOT_KEYS = frozenset({"architectures", "why"})


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

    def limit(self, fmt: str, model_type: str | None) -> Limit | None:
        return next((x for x in self.limits if fmt in x.formats and model_type in x.model_types), None)


def _source(check: Checker, data: Any, entry: str) -> str:
    source = check.mapping(data, entry)
    check.keys(source, frozenset({"document", "version"}), f"{entry}.", frozenset({"document", "version"}))
    document = check.text(source["document"], f"{entry}.document")
    return f"{document} ({check.text(str(source['version']), f'{entry}.version')})"


def _runtimes(path: Path, data: Any) -> dict[str, RuntimeModels]:
    check = Checker(path)
    data = check.mapping(data, "top level")
    check.keys(data, frozenset({"runtimes"}), "", frozenset({"runtimes"}))
    known = {r.id for r in load_runtimes().runtimes}
    result = {}
    for rid, spec in check.mapping(data["runtimes"], "runtimes").items():
        entry = f"runtimes.{rid}"
        if rid not in known:
            raise check.fail(entry, f"unknown runtime (runtimes.yaml has {', '.join(sorted(known))})")
        spec = check.mapping(spec, entry)
        check.keys(spec, _RUNTIME_KINDS | {"source", "but_not"}, f"{entry}.", frozenset())
        kinds = _RUNTIME_KINDS & spec.keys()
        if len(kinds) != 1:
            raise check.fail(entry, f"give exactly one of {', '.join(sorted(_RUNTIME_KINDS))}")
        if "matrices" in spec:
            if spec["matrices"] != "trtllm" or "source" in spec:
                raise check.fail(f"{entry}.matrices", "only `matrices: trtllm` (the seeds name their source)")
            result[rid] = RuntimeModels(rid, "trtllm_models.yaml, trtllm_hardware.yaml", matrices="trtllm")
            continue
        source = _source(check, spec.get("source"), f"{entry}.source")
        if "any_architecture" in spec:
            why = check.text(spec["any_architecture"], f"{entry}.any_architecture")
            but_not = check.mapping(
                spec.get("but_not") or {"architectures": [], "why": "-"}, f"{entry}.but_not"
            )
            check.keys(but_not, _BUT_NOT_KEYS, f"{entry}.but_not.", _BUT_NOT_KEYS)
            result[rid] = RuntimeModels(
                rid,
                source,
                any_architecture=why,
                but_not=frozenset(
                    check.text_list(but_not["architectures"], f"{entry}.but_not.architectures")
                ),
                but_not_why=" ".join(check.text(but_not["why"], f"{entry}.but_not.why").split()),
            )
        elif "but_not" in spec:
            raise check.fail(f"{entry}.but_not", "only an any_architecture runtime has exceptions")
        else:
            archs = check.text_list(spec["architectures"], f"{entry}.architectures")
            result[rid] = RuntimeModels(rid, source, architectures=frozenset(archs))
    for rid in sorted(known - result.keys()):
        raise check.fail(f"runtimes.{rid}", "missing: every runtime of runtimes.yaml says what it runs")
    return result


def _modelopt(path: Path, data: Any, seed: Matrix) -> ModelOptTable:
    check = Checker(path)
    matrix = parse_matrix(path, data, extra_keys=frozenset({"model_types", "seed_rows"}))
    types: dict[str, str] = {}
    for row, listed in check.mapping(data.get("model_types") or {}, "model_types").items():
        if row not in matrix.rows:
            raise check.fail(f"model_types.{row}", "unknown row (not in rows)")
        for model_type in check.text_list(listed, f"model_types.{row}"):
            if model_type in types:
                raise check.fail(
                    f"model_types.{row}", f"{model_type!r} is already in row {types[model_type]!r}"
                )
            types[model_type] = row
    seed_rows: dict[str, str] = {}
    for row, seed_row in check.mapping(data.get("seed_rows") or {}, "seed_rows").items():
        if row not in matrix.rows or seed_row not in seed.rows:
            raise check.fail(f"seed_rows.{row}", f"unknown row here, or {seed_row!r} not in {seed.path.name}")
        seed_rows[seed_row] = row
    return ModelOptTable(matrix, types, seed_rows)


def _limits(path: Path, data: Any) -> tuple[Limit, ...]:
    check = Checker(path)
    data = check.mapping(data, "top level")
    check.keys(data, frozenset({"limits"}), "", frozenset({"limits"}))
    limits = []
    for i, raw in enumerate(data["limits"] or []):
        entry = f"limits[{i}]"
        raw = check.mapping(raw, entry)
        keys = frozenset({"formats", "model_types", "reason", "source"})
        check.keys(raw, keys, f"{entry}.", keys)
        formats = check.text_list(raw["formats"], f"{entry}.formats")
        for fmt in formats:
            if fmt not in FORMATS:
                raise check.fail(f"{entry}.formats", f"unknown format {fmt!r}")
        limits.append(
            Limit(
                frozenset(formats),
                frozenset(check.text_list(raw["model_types"], f"{entry}.model_types")),
                " ".join(check.text(raw["reason"], f"{entry}.reason").split()),
                check.text(raw["source"], f"{entry}.source"),
            )
        )
    return tuple(limits)


@lru_cache(maxsize=4)
def load_families(directory: Path = DATA_DIR) -> Families:
    """Read and check the three files in `directory` against the runtime table and the seed matrices there
    (cached: the planner calls this per plan)."""
    from bot.eligibility.matrices import load_matrices, read_yaml  # the package imports this module

    hf = directory / "modelopt_hf.yaml"
    return Families(
        runtimes=_runtimes(directory / "runtime_models.yaml", read_yaml(directory / "runtime_models.yaml")),
        modelopt=_modelopt(hf, read_yaml(hf), load_matrices(directory).modelopt),
        limits=_limits(directory / "toolchain_limits.yaml", read_yaml(directory / "toolchain_limits.yaml")),
    )
