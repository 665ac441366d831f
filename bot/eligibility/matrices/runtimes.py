"""The runtime table (runtimes.yaml): which runtime loads which format on which SMs, how it recognises the
format in a release's files, which file of which runtime version says so, and the transformers line each
runtime runs on (the verification after upload reads every release under each of those lines).

Cards show it as "Runs with", `/formats` and `quantbot plan` list it, and the post-upload verification applies
its detection rules to the files downloaded from the Hub. A typo in the file (an unknown format, runtime key
or SM) is a `MatrixError` naming the file and the entry, as for the support matrices.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from bot.eligibility.matrices.reader import read_yaml
from bot.eligibility.matrices.tables import FORMATS, Checker

RUNTIMES_FILE = Path(__file__).parent / "runtimes.yaml"

_RUNTIME_KEYS = frozenset({"id", "name", "install", "transformers", "cells"})
_LINE = re.compile(r"\d+\.\d+")
_CELL_KEYS = frozenset({"loads", "min_sm", "sms", "note", "why", "wrong", "detect", "source"})
_DETECT_KEYS = frozenset({"file", "key", "values"})


@dataclass(frozen=True)
class Detect:
    """One condition a runtime checks: `file` exists in the release and, with `key`, holds one of `values`."""

    file: str
    key: str | None = None
    values: tuple[Any, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"file": self.file, "key": self.key, "values": list(self.values)}


@dataclass(frozen=True)
class RuntimeCell:
    """Whether one runtime loads one format, where, how it tells, and who says so."""

    runtime: str
    format: str
    loads: bool
    min_sm: int | None
    sms: tuple[int, ...]
    note: str
    why: str
    wrong: bool  # loads without an error but computes something else: cards warn against it
    detect: tuple[Detect, ...]
    source_file: str
    source_version: str

    def runs_on(self, sm: int) -> bool:
        if not self.loads:
            return False
        return sm in self.sms if self.sms else sm >= (self.min_sm or 0)

    @property
    def sm_text(self) -> str:
        """`sm89+`, `sm89, sm90`, or `any GPU or CPU` (min_sm 0)."""
        if not self.loads:
            return "—"
        if self.sms:
            return ", ".join(f"sm{s}" for s in self.sms)
        return f"sm{self.min_sm}+" if self.min_sm else "any GPU, or CPU"

    @property
    def verdict(self) -> str:
        """The "Loads it" column: `yes`, `no`, or `no: loads wrongly` for a runtime that fails silently."""
        if self.loads:
            return "yes"
        return "no: loads wrongly" if self.wrong else "no"

    @property
    def source(self) -> str:
        return f"`{self.source_file}` ({self.source_version})"


@dataclass(frozen=True)
class TransformersLine:
    """The transformers line a runtime runs on (`4.57`: any 4.57.x), and the requirements that say so."""

    line: str
    source_file: str
    source_version: str

    @property
    def source(self) -> str:
        return f"`{self.source_file}` ({self.source_version})"


@dataclass(frozen=True)
class Runtime:
    id: str
    name: str
    install: str
    transformers: TransformersLine
    cells: dict[str, RuntimeCell]


@dataclass(frozen=True)
class RuntimeTable:
    path: Path
    label: str
    runtimes: tuple[Runtime, ...]

    def cells(self, fmt: str) -> list[tuple[Runtime, RuntimeCell]]:
        """Every runtime's cell for `fmt`, in the file's order."""
        return [(r, r.cells[fmt]) for r in self.runtimes]

    def loaders(self, fmt: str) -> list[tuple[Runtime, RuntimeCell]]:
        """The runtimes that load `fmt`."""
        return [(r, c) for r, c in self.cells(fmt) if c.loads]

    def summary(self, fmt: str) -> str:
        """`vLLM (sm89+), SGLang (sm89+)`: who loads `fmt` where, for one-line answers and the plan."""
        return ", ".join(f"{r.name} ({c.sm_text})" for r, c in self.loaders(fmt)) or "no runtime in the table"

    def runtime(self, runtime_id: str) -> Runtime:
        return next(r for r in self.runtimes if r.id == runtime_id)

    def transformers_lines(self, fmt: str) -> dict[str, list[str]]:
        """Transformers line → the names of the runtimes that load `fmt` on it, lines in version order."""
        lines: dict[str, list[str]] = {}
        for runtime, _ in self.loaders(fmt):
            lines.setdefault(runtime.transformers.line, []).append(runtime.name)
        return dict(sorted(lines.items(), key=lambda item: tuple(int(n) for n in item[0].split("."))))


def _ints(check: Checker, value: Any, entry: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise check.fail(entry, "expected a non-empty list of SMs such as [89, 90]")
    for item in value:
        if not isinstance(item, int) or isinstance(item, bool):
            raise check.fail(entry, f"an SM is an integer such as 90, got {item!r}")
    return tuple(value)


def _detect(check: Checker, value: Any, entry: str) -> tuple[Detect, ...]:
    if not isinstance(value, list) or not value:
        raise check.fail(entry, "a runtime that loads a format needs its detection rule (a list)")
    rules = []
    for i, item in enumerate(value):
        where = f"{entry}[{i}]"
        item = check.mapping(item, where)
        check.keys(item, _DETECT_KEYS, f"{where}.", frozenset({"file"}))
        file = check.text(item["file"], f"{where}.file")
        if file.startswith("/") or ".." in file.split("/"):
            raise check.fail(f"{where}.file", f"a path inside the release, got {file!r}")
        key = check.text(item["key"], f"{where}.key") if "key" in item else None
        values = item.get("values", [])
        if (key is None) != (not values) or not isinstance(values, list):
            raise check.fail(where, "`key` and a non-empty `values` list go together")
        rules.append(Detect(file, key, tuple(values)))
    return tuple(rules)


def _transformers(check: Checker, value: Any, entry: str) -> TransformersLine:
    data = check.mapping(value, entry)
    check.keys(data, frozenset({"line", "source"}), f"{entry}.", frozenset({"line", "source"}))
    line = check.text(str(data["line"]), f"{entry}.line")
    if not _LINE.fullmatch(line):
        raise check.fail(f"{entry}.line", f'a major.minor version such as "4.57", got {line!r}')
    source = check.mapping(data["source"], f"{entry}.source")
    check.keys(source, frozenset({"file", "version"}), f"{entry}.source.", frozenset({"file", "version"}))
    return TransformersLine(
        line,
        check.text(source["file"], f"{entry}.source.file"),
        check.text(str(source["version"]), f"{entry}.source.version"),
    )


def _cell(check: Checker, runtime: str, fmt: str, data: Any) -> RuntimeCell:
    entry = f"{runtime}.cells.{fmt}"
    data = check.mapping(data, entry)
    check.keys(data, _CELL_KEYS, f"{entry}.", frozenset({"loads", "source"}))
    loads = data["loads"]
    if not isinstance(loads, bool):
        raise check.fail(f"{entry}.loads", f"expected true or false, got {loads!r}")
    source = check.mapping(data["source"], f"{entry}.source")
    check.keys(source, frozenset({"file", "version"}), f"{entry}.source.", frozenset({"file", "version"}))
    min_sm = data.get("min_sm")
    sms: tuple[int, ...] = ()
    if loads:
        if ("min_sm" in data) == ("sms" in data):
            raise check.fail(entry, "a loading cell gives exactly one of min_sm or sms")
        if "sms" in data:
            sms = _ints(check, data["sms"], f"{entry}.sms")
        elif not isinstance(min_sm, int) or isinstance(min_sm, bool):
            raise check.fail(f"{entry}.min_sm", f"expected an integer SM, got {min_sm!r}")
        detect = _detect(check, data.get("detect"), f"{entry}.detect")
        why = ""
    else:
        for key in ("min_sm", "sms", "detect"):
            if key in data:
                raise check.fail(f"{entry}.{key}", "only a cell with loads: true has it")
        why = check.text(data.get("why"), f"{entry}.why")
        detect = ()
    wrong = data.get("wrong", False)
    if not isinstance(wrong, bool) or (wrong and loads):
        raise check.fail(f"{entry}.wrong", "true only on a cell with loads: false (it loads, but wrongly)")
    return RuntimeCell(
        runtime=runtime,
        format=fmt,
        loads=loads,
        min_sm=min_sm if loads and not sms else None,
        sms=sms,
        note=check.text(data["note"], f"{entry}.note") if "note" in data else "",
        why=why,
        wrong=wrong,
        detect=detect,
        source_file=check.text(source["file"], f"{entry}.source.file"),
        source_version=check.text(str(source["version"]), f"{entry}.source.version"),
    )


def parse_runtimes(path: Path, data: Any) -> RuntimeTable:
    """Validate the table; every problem names the file and the entry."""
    check = Checker(path)
    data = check.mapping(data, "top level")
    check.keys(data, frozenset({"label", "runtimes"}), "", frozenset({"label", "runtimes"}))
    if not isinstance(data["runtimes"], list) or not data["runtimes"]:
        raise check.fail("runtimes", "expected a non-empty list")
    runtimes: list[Runtime] = []
    for i, item in enumerate(data["runtimes"]):
        item = check.mapping(item, f"runtimes[{i}]")
        check.keys(item, _RUNTIME_KEYS, f"runtimes[{i}].", _RUNTIME_KEYS)
        rid = check.text(item["id"], f"runtimes[{i}].id")
        if any(r.id == rid for r in runtimes):
            raise check.fail(f"runtimes[{i}].id", f"duplicate runtime {rid!r}")
        cells = check.mapping(item["cells"], f"{rid}.cells")
        for fmt in cells:
            if fmt not in FORMATS:
                raise check.fail(
                    f"{rid}.cells.{fmt}", f"unknown format (expected one of {', '.join(FORMATS)})"
                )
        for fmt in FORMATS:
            if fmt not in cells:
                raise check.fail(
                    f"{rid}.cells.{fmt}", "missing: every runtime says something of every format"
                )
        runtimes.append(
            Runtime(
                id=rid,
                name=check.text(item["name"], f"{rid}.name"),
                install=check.text(item["install"], f"{rid}.install"),
                transformers=_transformers(check, item["transformers"], f"{rid}.transformers"),
                cells={fmt: _cell(check, rid, fmt, cells[fmt]) for fmt in FORMATS},
            )
        )
    return RuntimeTable(path, check.text(data["label"], "label"), tuple(runtimes))


@lru_cache(maxsize=4)
def load_runtimes(path: Path = RUNTIMES_FILE) -> RuntimeTable:
    """Read and validate runtimes.yaml (cached)."""
    return parse_runtimes(path, read_yaml(path))
