"""Which matrix rows a model belongs to: model_rows.yaml, read and checked against the matrices.

The matrices name model families in their own words ("QWen 2, 2.5", "Qwen-2/2.5"); configs name a
`model_type`. The mapping between them is data, with small rules for the cases one model_type spans several
rows (the Llama generations, Falcon, Nemotron): the first rule whose config conditions hold decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.eligibility.matrices.reader import Source, Strict, Text, fail, validated
from bot.eligibility.matrices.tables import Matrix

_OPERATORS = frozenset({"one_of", "at_least", "at_most", "present"})
_MISSING = object()


@dataclass(frozen=True)
class Condition:
    """One config test: the first present of `paths` compared with `value` by `op`."""

    paths: tuple[str, ...]
    op: str
    value: Any

    def holds(self, config: Mapping[str, Any]) -> bool:
        found = next((v for v in (_lookup(config, p) for p in self.paths) if v is not _MISSING), _MISSING)
        if self.op == "present":
            return (found is not _MISSING) == bool(self.value)
        if found is _MISSING:
            return False
        if self.op == "equals":
            return found == self.value and isinstance(found, bool) == isinstance(self.value, bool)
        if self.op == "one_of":
            return found in self.value
        if not isinstance(found, int | float) or isinstance(found, bool):
            return False
        return found >= self.value if self.op == "at_least" else found <= self.value


@dataclass(frozen=True)
class Rule:
    """Rows to use when every condition holds (and the name contains `name_contains`, if set)."""

    rows: tuple[str, ...]
    conditions: tuple[Condition, ...]
    name_contains: str | None
    why: str

    def matches(self, config: Mapping[str, Any], name: str) -> bool:
        if self.name_contains and self.name_contains not in name.lower():
            return False
        return all(c.holds(config) for c in self.conditions)


@dataclass(frozen=True)
class RowMatch:
    """The rows a model maps to in one matrix (empty: not listed) and why."""

    rows: tuple[str, ...]
    why: str


@dataclass(frozen=True)
class RowMapping:
    """model_type → per-matrix rules, and architecture class → model_type for configs without one."""

    path: Path
    model_types: Mapping[str, Mapping[str, tuple[Rule, ...]]]
    architectures: Mapping[str, str]

    def key_for(self, model_type: str | None, architectures: tuple[str, ...]) -> str | None:
        """The model_type entry to use: the config's own, else the first known architecture's."""
        if model_type in self.model_types:
            return model_type
        return next((self.architectures[a] for a in architectures if a in self.architectures), None)

    def resolve(
        self,
        matrix: str,
        model_type: str | None,
        architectures: tuple[str, ...],
        config: Mapping[str, Any],
        name: str,
    ) -> RowMatch:
        key = self.key_for(model_type, architectures)
        if key is None:
            return RowMatch((), f"no row for model_type {model_type!r}")
        for rule in self.model_types[key].get(matrix, ()):
            if rule.matches(config, name):
                return RowMatch(rule.rows, rule.why)
        return RowMatch((), f"no row for model_type {key!r}")


def _lookup(config: Mapping[str, Any], path: str) -> Any:
    value: Any = config
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


class RulesFile(Strict):
    """model_rows.yaml as written: per model_type, per matrix, a row, rows, null or rules; architectures."""

    source: Source | None = None
    model_types: dict[str, dict[str, Any] | None]
    architectures: dict[str, str] | None = None


class RuleEntry(Strict):
    """One rule: its rows, the config conditions (`when`), an optional name test, and why."""

    row: Any
    when: dict[str, Any] | None = None
    name_contains: Text | None = None
    why: Text


def parse_rows(path: Path, data: Any, matrices: Mapping[str, Matrix]) -> RowMapping:
    """Validate model_rows.yaml against the matrices it names; an unknown row is an error naming the entry."""
    read = validated(RulesFile, path, data)
    model_types: dict[str, dict[str, tuple[Rule, ...]]] = {}
    for model_type, per_matrix in read.model_types.items():
        entry = f"model_types.{model_type}"
        model_types[model_type] = {}
        for key, spec in (per_matrix or {}).items():
            if key not in matrices:
                raise fail(path, f"{entry}.{key}", f"unknown matrix (expected one of {', '.join(matrices)})")
            model_types[model_type][key] = _parse_spec(
                path, f"{entry}.{key}", spec, matrices[key], model_type
            )
    for arch, model_type in (read.architectures or {}).items():
        if model_type not in model_types:
            raise fail(
                path, f"architectures.{arch}", f"unknown model_type {model_type!r} (not under model_types)"
            )
    return RowMapping(path, model_types, dict(read.architectures or {}))


def _parse_spec(path: Path, entry: str, spec: Any, matrix: Matrix, model_type: str) -> tuple[Rule, ...]:
    """A row name, a list of row names, null, or a list of rules → rules."""
    if (
        spec is None
        or isinstance(spec, str)
        or (isinstance(spec, list) and all(isinstance(s, str) for s in spec))
    ):
        rows = _rows(path, entry, spec, matrix)
        why = (
            f"model_type {model_type}"
            if rows
            else f"{matrix.label} lists no row for model_type {model_type!r}"
        )
        return (Rule(rows, (), None, why),)
    if not isinstance(spec, list):
        raise fail(path, entry, "expected a row name, a list of row names, null, or a list of rules")
    rules = []
    for i, raw in enumerate(spec):
        where = f"{entry}[{i}]"
        rule = validated(RuleEntry, path, raw, where)
        conditions = tuple(_condition(path, f"{where}.when.{p}", p, v) for p, v in (rule.when or {}).items())
        name = rule.name_contains.lower() if rule.name_contains is not None else None
        rules.append(Rule(_rows(path, f"{where}.row", rule.row, matrix), conditions, name, rule.why))
    return tuple(rules)


def _rows(path: Path, entry: str, spec: Any, matrix: Matrix) -> tuple[str, ...]:
    names = [] if spec is None else [spec] if isinstance(spec, str) else spec
    if not isinstance(names, list):
        raise fail(path, entry, f"expected a row name, a list of row names or null, got {spec!r}")
    for name in names:
        if name not in matrix.rows:
            raise fail(path, entry, f"unknown row alias {name!r}: {matrix.path.name} has no such row")
    return tuple(names)


def _condition(path: Path, entry: str, key: str, value: Any) -> Condition:
    paths = tuple(p.strip() for p in key.split("|"))
    if not isinstance(value, dict):
        return Condition(paths, "equals", value)
    if len(value) != 1 or next(iter(value)) not in _OPERATORS:
        raise fail(
            path, entry, f"expected a value or one of {{{', '.join(sorted(_OPERATORS))}: ...}}, got {value!r}"
        )
    op, operand = next(iter(value.items()))
    if op == "one_of" and not isinstance(operand, list):
        raise fail(path, entry, "one_of needs a list")
    if op in ("at_least", "at_most") and (not isinstance(operand, int | float) or isinstance(operand, bool)):
        raise fail(path, entry, f"{op} needs a number")
    return Condition(paths, op, operand)
