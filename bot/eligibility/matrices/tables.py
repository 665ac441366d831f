"""One support matrix (a table of the seeds) read from its data file (`MatrixFile`) and checked cell by cell.

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
from typing import Any, Literal

from pydantic import Field

from bot.eligibility.matrices.reader import Source, Strict, Text, fail
from builders.spec import FORMATS as FORMAT_IDS
from builders.spec import MODELOPT_FORMATS

FORMATS: dict[str, str] = {fmt: "ModelOpt" if fmt in MODELOPT_FORMATS else "GPTQModel" for fmt in FORMAT_IDS}
"""quantbot's canonical format ids (builders.spec, DESIGN.md) and the tool that produces each."""

OPTIONS = frozenset({"kv_cache_fp8"})
"""Recipe options a matrix column may stand for (not formats of their own)."""

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


Meaning = Literal["supported", "not supported", "not listed"]


class MatrixFile(Strict):
    """A matrix file as written: its source, the table verbatim, and which columns are formats or options."""

    source: Source
    label: Text
    legend: dict[str, Meaning]
    header: list[Text]
    formats: dict[str, str] | None = None
    options: dict[str, str] | None = None
    rows: list[list[Text]] = Field(min_length=1)
    footnotes: dict[int, Text] | None = None
    notes: list[Text] | None = None


def parse_matrix(path: Path, read: MatrixFile) -> Matrix:
    """Check a matrix file's table cell by cell and build the Matrix; every problem names file and entry."""
    header = read.header
    if len(header) < 2:
        raise fail(path, "header", "needs the row-name header and at least one column")
    columns: list[str] = []
    column_footnotes = {}
    for text in header[1:]:
        name, refs = split_footnotes(text)
        if name in columns:
            raise fail(path, f"header column {name!r}", "duplicate column")
        columns.append(name)
        column_footnotes[name] = refs
    footnotes = dict(read.footnotes or {})

    def refs_known(refs: tuple[int, ...], entry: str) -> tuple[int, ...]:
        for n in refs:
            if n not in footnotes:
                raise fail(path, entry, f"refers to footnote {n}, which the file does not define")
        return refs

    for name, refs in column_footnotes.items():
        refs_known(refs, f"header column {name!r}")
    rows: dict[str, dict[str, Cell]] = {}
    row_footnotes: dict[str, tuple[int, ...]] = {}
    for i, cells in enumerate(read.rows):
        if len(cells) != len(header):
            raise fail(
                path, f"rows[{i}] {cells[:1]}", f"has {len(cells)} cells, the header has {len(header)}"
            )
        name, refs = split_footnotes(cells[0])
        if name in rows:
            raise fail(path, f"rows[{i}] {name!r}", "duplicate row")
        row_footnotes[name] = refs_known(refs, f"rows[{i}] {name!r}")
        rows[name] = {}
        for column, text in zip(columns, cells[1:], strict=True):
            entry = f"rows[{i}] {name!r}, column {column!r}"
            symbol, cell_refs = split_footnotes(text)
            if symbol not in read.legend:
                known = ", ".join(repr(s) for s in read.legend)
                raise fail(path, entry, f"unknown cell value {text!r} (the legend has {known})")
            rows[name][column] = Cell(text, symbol, read.legend[symbol], refs_known(cell_refs, entry))
    return Matrix(
        path=path,
        label=read.label,
        document=read.source.document,
        version=read.source.version,
        columns=tuple(columns),
        rows=rows,
        formats=_column_map(path, read.formats, "formats", columns, FORMATS.keys(), "format"),
        options=_column_map(path, read.options, "options", columns, OPTIONS, "option"),
        footnotes=footnotes,
        column_footnotes=column_footnotes,
        row_footnotes=row_footnotes,
        notes=tuple(read.notes or ()),
    )


def _column_map(
    path: Path, raw: dict[str, str] | None, entry: str, columns: list[str], known: Any, kind: str
) -> dict[str, str]:
    """`{column header: format id}` in the file → `{format id: column}`, both sides checked."""
    result: dict[str, str] = {}
    for column, target in (raw or {}).items():
        where = f"{entry}.{column}"
        if column not in columns:
            raise fail(path, where, f"unknown column {column!r} (the header has {', '.join(columns)})")
        if target not in known:
            raise fail(path, where, f"unknown {kind} {target!r} (expected one of {', '.join(sorted(known))})")
        if target in result:
            raise fail(path, where, f"{kind} {target!r} is already mapped to column {result[target]!r}")
        result[target] = column
    return result
