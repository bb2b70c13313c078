"""The models package has no import cycles, lazy (function-level) imports included.

A cycle that only works because one side imports inside a function breaks as soon as someone moves
that import to the top, and makes the modules impossible to understand one at a time."""

from __future__ import annotations

import ast
from pathlib import Path

import tamis

SRC = Path(tamis.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, known: set[str]) -> set[str]:
    """Every tamis module this file imports, at any depth of the file (lazy imports count)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found.update(n for n in names if n in known)
    return found


def _graph(package: str) -> dict[str, set[str]]:
    files = {_module_name(p): p for p in (SRC.parent / package.replace(".", "/")).rglob("*.py")}
    # importing a package's __init__ is not a dependency on its submodules' cycles, so leave it out
    return {m: _imports(p, set(files)) - {m, package} for m, p in files.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in stack:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif len(stack) < len(graph):
                visit(nxt, stack + [nxt])

    for start in sorted(graph):
        visit(start, [start])
    return cycles


def test_graph_finds_a_cycle_when_there_is_one():
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b", "a"], ["b", "a", "b"]]


def test_models_package_has_no_import_cycle():
    graph = _graph("tamis.models")
    assert "tamis.models.derived" in graph["tamis.models.hf"]  # the edge that remains, one way
    assert _cycles(graph) == []
