"""One support matrix (a table of the seeds) read from its data file and checked cell by cell.

A matrix file holds the table as it is published: the header row, one list per row with the cells verbatim
(`✅`, `❌<sup>2</sup>`, `Y`, `.`), the footnotes, and which columns are quantbot's canonical formats. Reading
it strictly means that a pasted table with a typo fails at load time, naming the file and the entry, instead
of silently turning a format off.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.errors import MatrixError
from builders.spec import FORMATS as FORMAT_IDS
from builders.spec import MODELOPT_FORMATS

FORMATS: dict[str, str] = {fmt: "ModelOpt" if fmt in MODELOPT_FORMATS else "GPTQModel" for fmt in FORMAT_IDS}
"""quantbot's canonical format ids (builders.spec, DESIGN.md) and the tool that produces each."""

OPTIONS = frozenset({"kv_cache_fp8"})
"""Recipe options a matrix column may stand for (not formats of their own)."""

MEANINGS = ("supported", "not supported", "not listed")

_MATRIX_KEYS = frozenset(
    {"source", "label", "legend", "header", "formats", "options", "rows", "footnotes", "notes"}
)
_SUP = re.compile(r"<sup>\s*([\d,\s]+?)\s*</sup>")


def split_footnotes(text: str) -> tuple[str, tuple[int, ...]]:
    """`'LLAMA 4 <sup>6</sup>'` → `('LLAMA 4', (6,))`: the name and the footnote numbers it carries."""
    refs = tuple(int(n) for group in _SUP.findall(text) for n in group.replace(",", " ").split())
    return _SUP.sub("", text).strip(), refs


@dataclass(frozen=True)
class Cell:
    """One cell: its verbatim text, its symbol, what the legend says the symbol means, its footnotes."""

    text: str
    symbol: str
    meaning: str
    footnotes: tuple[int, ...] = ()

    @property
    def supported(self) -> bool:
        return self.meaning == "supported"


@dataclass(frozen=True)
class Matrix:
    """A validated support matrix: rows × columns of cells, plus where it comes from."""

    path: Path
    label: str
    document: str
    version: str
    columns: tuple[str, ...]
    rows: Mapping[str, Mapping[str, Cell]]
    formats: Mapping[str, str]
    options: Mapping[str, str]
    footnotes: Mapping[int, str]
    column_footnotes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    row_footnotes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def column_for(self, fmt: str) -> str | None:
        """The column that decides `fmt` (a format id or an option), or None when the table has none."""
        return self.formats.get(fmt) or self.options.get(fmt)

    def cell(self, row: str, column: str) -> Cell:
        return self.rows[row][column]

    def footnote_texts(self, row: str, column: str) -> list[str]:
        """The footnotes that qualify one cell: the row's, the column's and the cell's own, in that order."""
        numbers = (*self.row_footnotes.get(row, ()), *self.column_footnotes.get(column, ()))
        numbers += self.rows[row][column].footnotes
        return [f"{self.label} footnote {n}: {self.footnotes[n]}" for n in dict.fromkeys(numbers)]


class Checker:
    """Raises MatrixError messages of the form `<file>: <entry>: <problem>`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, entry: str, problem: str) -> MatrixError:
        return MatrixError(f"{self.path.name}: {entry}: {problem}")

    def mapping(self, value: Any, entry: str) -> dict[Any, Any]:
        if not isinstance(value, dict):
            raise self.fail(entry, f"expected a mapping, got {type(value).__name__}")
        return value

    def text(self, value: Any, entry: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(entry, f"expected a non-empty string, got {value!r}")
        return value.strip()

    def text_list(self, value: Any, entry: str) -> list[str]:
        if not isinstance(value, list):
            raise self.fail(entry, f"expected a list, got {type(value).__name__}")
        return [self.text(item, f"{entry}[{i}]") for i, item in enumerate(value)]

    def keys(
        self, data: dict[str, Any], allowed: frozenset[str], entry: str, required: frozenset[str]
    ) -> None:
        for key in data:
            if key not in allowed:
                raise self.fail(
                    f"{entry}{key}", f"unknown key (expected one of {', '.join(sorted(allowed))})"
                )
        for key in sorted(required - data.keys()):
            raise self.fail(f"{entry}{key}", "missing")


def parse_matrix(path: Path, data: Any, extra_keys: frozenset[str] = frozenset()) -> Matrix:
    """Validate one matrix file's content and build the Matrix; every problem names file and entry."""
    check = Checker(path)
    data = check.mapping(data, "top level")
    check.keys(
        data, _MATRIX_KEYS | extra_keys, "", frozenset({"source", "label", "legend", "header", "rows"})
    )
    source = check.mapping(data["source"], "source")
    document = check.text(source.get("document"), "source.document")
    version = check.text(str(source.get("version", "")), "source.version")

    legend = check.mapping(data["legend"], "legend")
    for symbol, meaning in legend.items():
        if meaning not in MEANINGS:
            raise check.fail(
                f"legend {symbol!r}", f"unknown meaning {meaning!r} (expected one of {MEANINGS})"
            )

    header = check.text_list(data["header"], "header")
    if len(header) < 2:
        raise check.fail("header", "needs the row-name header and at least one column")
    columns, column_footnotes = [], {}
    for text in header[1:]:
        name, refs = split_footnotes(text)
        if name in columns:
            raise check.fail(f"header column {name!r}", "duplicate column")
        columns.append(name)
        column_footnotes[name] = refs

    footnotes = {}
    for number, text in check.mapping(data.get("footnotes") or {}, "footnotes").items():
        if not isinstance(number, int):
            raise check.fail(f"footnotes {number!r}", "footnote numbers must be integers")
        footnotes[number] = check.text(text, f"footnotes {number}")

    def refs_known(refs: tuple[int, ...], entry: str) -> tuple[int, ...]:
        for n in refs:
            if n not in footnotes:
                raise check.fail(entry, f"refers to footnote {n}, which the file does not define")
        return refs

    for name, refs in column_footnotes.items():
        refs_known(refs, f"header column {name!r}")

    rows: dict[str, dict[str, Cell]] = {}
    row_footnotes: dict[str, tuple[int, ...]] = {}
    raw_rows = data["rows"]
    if not isinstance(raw_rows, list) or not raw_rows:
        raise check.fail("rows", "expected a non-empty list of table rows")
    for i, raw in enumerate(raw_rows):
        cells = check.text_list(raw, f"rows[{i}]")
        if len(cells) != len(header):
            raise check.fail(
                f"rows[{i}] {cells[:1]}", f"has {len(cells)} cells, the header has {len(header)}"
            )
        name, refs = split_footnotes(cells[0])
        if name in rows:
            raise check.fail(f"rows[{i}] {name!r}", "duplicate row")
        row_footnotes[name] = refs_known(refs, f"rows[{i}] {name!r}")
        rows[name] = {}
        for column, text in zip(columns, cells[1:], strict=True):
            entry = f"rows[{i}] {name!r}, column {column!r}"
            symbol, cell_refs = split_footnotes(text)
            if symbol not in legend:
                known = ", ".join(repr(s) for s in legend)
                raise check.fail(entry, f"unknown cell value {text!r} (the legend has {known})")
            rows[name][column] = Cell(text, symbol, legend[symbol], refs_known(cell_refs, entry))

    formats = _column_map(check, data.get("formats"), "formats", columns, FORMATS.keys(), "format")
    options = _column_map(check, data.get("options"), "options", columns, OPTIONS, "option")
    notes = tuple(check.text_list(data.get("notes") or [], "notes"))
    return Matrix(
        path=path,
        label=check.text(data["label"], "label"),
        document=document,
        version=version,
        columns=tuple(columns),
        rows=rows,
        formats=formats,
        options=options,
        footnotes=footnotes,
        column_footnotes=column_footnotes,
        row_footnotes=row_footnotes,
        notes=notes,
    )


def _column_map(
    check: Checker, raw: Any, entry: str, columns: list[str], known: Any, kind: str
) -> dict[str, str]:
    """`{column header: format id}` in the file → `{format id: column}`, both sides checked."""
    result: dict[str, str] = {}
    for column, target in check.mapping(raw or {}, entry).items():
        where = f"{entry}.{column}"
        if column not in columns:
            raise check.fail(where, f"unknown column {column!r} (the header has {', '.join(columns)})")
        if target not in known:
            raise check.fail(where, f"unknown {kind} {target!r} (expected one of {', '.join(sorted(known))})")
        if target in result:
            raise check.fail(where, f"{kind} {target!r} is already mapped to column {result[target]!r}")
        result[target] = column
    return result
