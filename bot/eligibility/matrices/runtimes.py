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
from typing import Annotated, Any

from pydantic import Field

from bot.eligibility.matrices.reader import Strict, Text, Version, fail, read_yaml, validated
from bot.eligibility.matrices.tables import FORMATS

RUNTIMES_FILE = Path(__file__).parent / "runtimes.yaml"

_LINE = re.compile(r"\d+\.\d+")


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


SM = Annotated[int, Field(strict=True, ge=0)]


class FileSource(Strict):
    """The file of a runtime's release that says so, and that release's version."""

    file: Text
    version: Version


class TransformersEntry(Strict):
    line: Version
    source: FileSource


class DetectEntry(Strict):
    file: Text
    key: Text | None = None
    values: list[Any] = Field(default_factory=list)


class CellEntry(Strict):
    """One runtime × format: loads or not (and why), where, how it recognises the files, and the source."""

    loads: Annotated[bool, Field(strict=True)]
    min_sm: SM | None = None
    sms: Annotated[list[SM], Field(min_length=1)] | None = None
    note: Text | None = None
    why: Text | None = None
    wrong: Annotated[bool, Field(strict=True)] = False
    detect: list[DetectEntry] | None = None
    source: FileSource


class RuntimeEntry(Strict):
    id: Text
    name: Text
    install: Text
    transformers: dict[str, Any]
    cells: dict[str, Any]


class RuntimesFile(Strict):
    label: Text
    runtimes: Annotated[list[dict[str, Any]], Field(min_length=1)]


def _detect(path: Path, rules: list[DetectEntry] | None, entry: str) -> tuple[Detect, ...]:
    if not rules:
        raise fail(path, entry, "a runtime that loads a format needs its detection rule (a list)")
    for i, rule in enumerate(rules):
        where = f"{entry}[{i}]"
        if rule.file.startswith("/") or ".." in rule.file.split("/"):
            raise fail(path, f"{where}.file", f"a path inside the release, got {rule.file!r}")
        if (rule.key is None) != (not rule.values):
            raise fail(path, where, "`key` and a non-empty `values` list go together")
    return tuple(Detect(rule.file, rule.key, tuple(rule.values)) for rule in rules)


def _transformers(path: Path, value: Any, entry: str) -> TransformersLine:
    read = validated(TransformersEntry, path, value, entry)
    if not _LINE.fullmatch(read.line):
        raise fail(path, f"{entry}.line", f'a major.minor version such as "4.57", got {read.line!r}')
    return TransformersLine(read.line, read.source.file, read.source.version)


def _cell(path: Path, runtime: str, fmt: str, data: Any) -> RuntimeCell:
    entry = f"{runtime}.cells.{fmt}"
    read = validated(CellEntry, path, data, entry)
    if read.loads:
        if (read.min_sm is None) == (read.sms is None):
            raise fail(path, entry, "a loading cell gives exactly one of min_sm or sms")
        detect = _detect(path, read.detect, f"{entry}.detect")
    else:
        for key in ("min_sm", "sms", "detect"):
            if getattr(read, key) is not None:
                raise fail(path, f"{entry}.{key}", "only a cell with loads: true has it")
        if read.why is None:
            raise fail(path, f"{entry}.why", "missing: a cell that does not load says why")
        detect = ()
    if read.wrong and read.loads:
        raise fail(path, f"{entry}.wrong", "true only on a cell with loads: false (it loads, but wrongly)")
    return RuntimeCell(
        runtime=runtime,
        format=fmt,
        loads=read.loads,
        min_sm=read.min_sm if read.loads and not read.sms else None,
        sms=tuple(read.sms or ()),
        note=read.note or "",
        why="" if read.loads else (read.why or ""),
        wrong=read.wrong,
        detect=detect,
        source_file=read.source.file,
        source_version=read.source.version,
    )


def parse_runtimes(path: Path, data: Any) -> RuntimeTable:
    """Validate the table; every problem names the file and the entry."""
    read = validated(RuntimesFile, path, data)
    runtimes: list[Runtime] = []
    for i, raw in enumerate(read.runtimes):
        item = validated(RuntimeEntry, path, raw, f"runtimes[{i}]")
        rid = item.id
        if any(r.id == rid for r in runtimes):
            raise fail(path, f"runtimes[{i}].id", f"duplicate runtime {rid!r}")
        for fmt in item.cells:
            if fmt not in FORMATS:
                raise fail(
                    path, f"{rid}.cells.{fmt}", f"unknown format (expected one of {', '.join(FORMATS)})"
                )
        for fmt in FORMATS:
            if fmt not in item.cells:
                raise fail(
                    path, f"{rid}.cells.{fmt}", "missing: every runtime says something of every format"
                )
        runtimes.append(
            Runtime(
                id=rid,
                name=item.name,
                install=item.install,
                transformers=_transformers(path, item.transformers, f"{rid}.transformers"),
                cells={fmt: _cell(path, rid, fmt, item.cells[fmt]) for fmt in FORMATS},
            )
        )
    return RuntimeTable(path, read.label, tuple(runtimes))


@lru_cache(maxsize=4)
def load_runtimes(path: Path = RUNTIMES_FILE) -> RuntimeTable:
    """Read and validate runtimes.yaml (cached)."""
    return parse_runtimes(path, read_yaml(path))
