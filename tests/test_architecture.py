"""The package's shape: no import cycles, short functions, modules of a readable size.

Read from the source text (ast), so a change that breaks the layout fails here
with the names of what broke it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "aeclust"
MODULES = {p.stem: p for p in PACKAGE.glob("*.py")}
#: The argparse builder reads best as one list of options.
LONG_FUNCTIONS_ALLOWED = {("cli", "build_parser")}
MAX_FUNCTION_LINES = 110


def _trees():
    return {name: ast.parse(path.read_text(), filename=str(path)) for name, path in MODULES.items()}


def _imports(tree: ast.Module) -> set[str]:
    """The package modules a module imports, at the top or inside functions (lazy imports count)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                found.update([node.module.split(".")[0]] if node.module else [a.name for a in node.names])
            elif node.module and node.module.split(".")[0] == "aeclust":
                parts = node.module.split(".")
                found.update([parts[1]] if len(parts) > 1 else [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("aeclust."))
    return found & set(MODULES)


def test_no_import_cycles():
    graph = {name: _imports(tree) - {name} for name, tree in _trees().items()}
    graph["__init__"] = set()  # the package's lazy names are not imports of a module

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt == goal:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    cycles = sorted(f"{a} -> {b} -> ... -> {a}" for a in graph for b in graph[a] if reaches(b, a))
    assert not cycles, cycles


def test_no_function_over_110_lines():
    long = []
    for name, tree in _trees().items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES and (name, node.name) not in LONG_FUNCTIONS_ALLOWED:
                    long.append(f"{name}.{node.name}: {lines} lines")
    assert not long, long


def test_the_run_reads_as_stages_and_the_dask_module_stays_lean():
    run = next(n for n in ast.parse(MODULES["pipeline"].read_text()).body
               if isinstance(n, ast.FunctionDef) and n.name == "run")
    assert run.end_lineno - run.lineno + 1 <= 80
    assert len(MODULES["distributed"].read_text().splitlines()) <= 850
