"""docs/architecture.md's layout table is the law: every row's "may import" and layer, and no import cycle.

Read from the source with `ast`, imports inside functions and under `TYPE_CHECKING` included, so a lazy
import cannot hide a reverse arrow or a cycle. `from package import module` counts the module only (not the
package's `__init__`), as Python resolves it.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ("bot", "handlers", "builders", "state")
LEAF = "handlers/inputs.py"  # the types both sides share
# The primitives of the job state machine: only `state` (its lifecycle module) calls them.
STATUS_MOVES = {"transition", "claim", "claim_publish", "requeue_expired"}
_TICKED = re.compile(r"`([^`]+)`")


@dataclass(frozen=True)
class Row:
    """One row of the layout table: the modules it covers, its layer, and what it may import."""

    paths: tuple[str, ...]  # dotted: `bot.commands` (a folder: all under it), `bot.cli` (a module)
    folders: tuple[str, ...]
    layer: int
    allowed: tuple[str, ...]

    def covers(self, module: str) -> int:
        """How specifically this row names `module` (0: not at all)."""
        named = [p for p in self.paths if p == module] + [p for p in self.folders if _within(module, p)]
        return max((len(p) + 1 for p in named), default=0)


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@cache
def layout() -> tuple[Row, ...]:
    """The rows of docs/architecture.md's layout table."""
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = page.split("| folder / module |", 1)[1].split("\n\n", 1)[0]
    rows = []
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[2] == "—":
            continue  # no Python (templates)
        named = _TICKED.findall(cells[0])
        paths = tuple(_dotted(p) for p in named if p.endswith(".py"))
        folders = tuple(_dotted(p) for p in named if p.endswith("/"))
        rows.append(Row(paths, folders, int(cells[2]), tuple(_TICKED.findall(cells[3]))))
    return tuple(rows)


def _dotted(path: str) -> str:
    """`bot/cli.py` → `bot.cli`, `bot/commands/` → `bot.commands`, `bot/__init__.py` → `bot`."""
    return path.removesuffix(".py").removesuffix("/").removesuffix("/__init__").replace("/", ".")


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {_module(p): p for package in PROJECT for p in sorted((ROOT / package).rglob("*.py"))}


def _imported(source: str, package: str) -> set[str]:
    """Every project module `source` (a module of `package`) imports; `from x import y` counts x.y, and x
    too unless y is a module of x."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names = {f"{base}.{alias.name}" for alias in node.names}
            found |= names
            if not names <= set(modules()):
                found.add(base)
    return {name for name in found if name.split(".")[0] in PROJECT}


def _resolved(name: str) -> str:
    """The project module an imported name is, or is in (`state.Job` → `state`)."""
    parts = name.split(".")
    while ".".join(parts) not in modules():
        parts.pop()
    return ".".join(parts)


@cache
def graph() -> dict[str, set[str]]:
    """Module → the project modules it imports."""
    found = {}
    for module, path in modules().items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        found[module] = {_resolved(n) for n in _imported(path.read_text(), package)} - {module}
    return found


def row_of(module: str) -> Row:
    best = max(layout(), key=lambda row: row.covers(module))
    assert best.covers(module), f"docs/architecture.md's layout table has no row for {module}"
    return best


def test_every_module_has_its_row() -> None:
    missing = [m for m in modules() if not any(row.covers(m) for row in layout())]
    assert not missing, f"docs/architecture.md's layout table has no row for {missing}"


def test_every_import_is_one_its_row_allows() -> None:
    bad = sorted(
        f"{module} imports {name}"
        for module, path in modules().items()
        for name in _imported(
            path.read_text(), module.rpartition(".")[0] if path.name != "__init__.py" else module
        )
        if not any(_within(name, p) for p in row_of(module).paths + row_of(module).folders)
        and not any(_within(name, allowed) for allowed in row_of(module).allowed)
    )
    assert not bad, "imports the layout table does not allow:\n" + "\n".join(bad)


def test_no_module_imports_one_on_a_layer_above_its_own() -> None:
    up = sorted(
        f"{module} (layer {row_of(module).layer}) imports {target} (layer {row_of(target).layer})"
        for module, targets in graph().items()
        for target in targets
        if row_of(target).layer > row_of(module).layer
    )
    assert not up, "arrows that run back up:\n" + "\n".join(up)


def test_no_import_cycle_anywhere() -> None:
    """Tarjan's strongly connected components over every module of the project, hubsim included."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph()[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = [stack.pop()]
            while component[-1] != v:
                component.append(stack.pop())
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in graph():
        if module not in index:
            visit(module)
    assert not cycles, f"import cycles: {cycles}"


def test_the_shared_types_are_a_leaf_both_sides_may_import() -> None:
    assert _imported((ROOT / LEAF).read_text(), "handlers") == set()


def test_only_the_lifecycle_module_moves_jobs() -> None:
    """Every change of a job's status goes through `state.lifecycle`; the executor, housekeeping and the
    commands ask it, and nothing outside `state` calls the store's primitives."""
    calls = {
        f"{path.relative_to(ROOT)}:{node.lineno} .{node.func.attr}()"
        for package in ("bot", "handlers", "builders")
        for path in sorted((ROOT / package).rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in STATUS_MOVES
        and "lifecycle" not in ast.unparse(node.func.value)
    }
    assert not calls, f"job status moved outside state.lifecycle: {sorted(calls)}"


def test_the_rules_catch_a_reverse_import_and_a_cycle() -> None:
    """The checker itself: a handler importing the dispatcher, even lazily or relatively, is found and
    refused; a layer above is found; two modules importing each other are a cycle."""
    source = "def f():\n    from bot.intake import dispatcher\n    from . import replies\n    import bot\n"
    names = _imported(source, "handlers")
    assert {"bot.intake.dispatcher", "handlers.replies", "bot"} <= names
    handlers = row_of("handlers.replies")
    refused = {n for n in names if not any(_within(n, a) for a in handlers.allowed + handlers.folders)}
    assert refused == {"bot.intake.dispatcher", "bot"}
    assert row_of("bot.intake.dispatcher").layer > handlers.layer
    assert any(_within("bot.errors.HubError", a) for a in handlers.allowed)


@pytest.mark.parametrize("module", ["bot.execution.orchestrator", "bot.host.tasks", "bot.launcher.launch"])
def test_each_process_has_its_room(module: str) -> None:
    """The bot's orchestration, the GPU host's program and the build launcher live in rooms of their own."""
    assert row_of(module).folders == (module.rpartition(".")[0],)
