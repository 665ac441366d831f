"""The builders' modules import each other one way: no cycle, counting imports inside functions too.

A lazy import can hide a cycle from Python's loader (it only resolves when the function runs); this test
reads every import statement, wherever it is, so a cycle cannot hide behind one.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def import_graph(package: str, root: Path = ROOT) -> dict[str, set[str]]:
    """Module → the modules of the same package it imports (anywhere in its body)."""
    files = {
        ".".join(f.relative_to(root).with_suffix("").parts).removesuffix(".__init__"): f
        for f in (root / package).rglob("*.py")
    }
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in files and t != name}
    return graph


def test_builders_import_graph_is_acyclic() -> None:
    graph = import_graph("builders")
    assert {"builders.context", "builders.hfmodel", "builders.gptq", "builders.validate"} <= graph.keys()
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as e:
        pytest.fail(f"import cycle among builders modules: {' -> '.join(e.args[1])}")


def test_the_graph_sees_imports_inside_functions(tmp_path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "a.py").write_text("def f():\n    from pkg import b\n")
    (package / "b.py").write_text("import pkg.a\n")
    graph = import_graph("pkg", tmp_path)
    assert graph == {"pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}}
    with pytest.raises(CycleError):
        tuple(TopologicalSorter(graph).static_order())
