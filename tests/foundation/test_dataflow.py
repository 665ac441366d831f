"""Data flows one way (docs/architecture.md): bot → handlers → state, and one module moves jobs.

Read from the source with `ast`, imports inside functions included, so a lazy import cannot hide a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ("bot", "handlers", "builders", "state", "templates")
# What each package may import of the project (a prefix matches the module and everything under it).
ALLOWED = {
    "handlers": ("handlers", "state", "builders.spec", "bot.errors"),
    "state": ("state",),
}
LEAF = "handlers/inputs.py"  # the types both sides share
# The primitives of the job state machine: only `state` (its lifecycle module) calls them.
STATUS_MOVES = {"transition", "claim", "claim_publish", "requeue_expired"}


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    return _imported(path.read_text(), ".".join(path.relative_to(ROOT).parts[:-1]))


def _imported(source: str, package: str) -> set[str]:
    """Every project module `source` (a module of `package`) imports; `from x import y` counts x and x.y."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in found if name.split(".")[0] in PROJECT}


def _allowed(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_what_the_layout_allows(package: str) -> None:
    bad = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in _modules(package)
        for name in _imports(path)
        if not _allowed(name, ALLOWED[package])
    }
    assert not bad, f"{package}/ reaches back into the bot: {sorted(bad)}"


def test_the_shared_types_are_a_leaf_both_sides_may_import() -> None:
    assert _imports(ROOT / LEAF) == set()


def test_only_the_lifecycle_module_moves_jobs() -> None:
    """Every change of a job's status goes through `state.lifecycle`; the executor, housekeeping and the
    commands ask it, and nothing outside `state` calls the store's primitives."""
    calls = {
        f"{path.relative_to(ROOT)}:{node.lineno} .{node.func.attr}()"
        for package in ("bot", "handlers", "builders")
        for path in _modules(package)
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in STATUS_MOVES
        and "lifecycle" not in ast.unparse(node.func.value)
    }
    assert not calls, f"job status moved outside state.lifecycle: {sorted(calls)}"


def test_the_rule_catches_a_reverse_import() -> None:
    """The checker itself: a handler importing the dispatcher, even lazily or relatively, is found."""
    source = "def f():\n    from bot.intake import dispatcher\n    from . import replies\n    import bot\n"
    names = _imported(source, "handlers")
    assert {"bot.intake", "bot.intake.dispatcher", "handlers.replies", "bot"} <= names
    refused = {n for n in names if not _allowed(n, ALLOWED["handlers"])}
    assert refused == {"bot.intake", "bot.intake.dispatcher", "bot"}
    assert _allowed("bot.errors.HubError", ALLOWED["handlers"])
