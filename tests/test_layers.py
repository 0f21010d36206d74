"""The layers contract: runtime <- build <- deploy <- operate, no upward import and no import cycle anywhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

from tests.helpers import PROJECT_ROOT

PACKAGES = ("handler", "builder", "infra", "toolkit")


def import_graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True, cache_dir=None)


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm), each a cycle of imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_the_layers_contract_holds():
    # Given the contract in pyproject.toml; When import-linter checks the project
    linter = Path(sys.executable).with_name("lint-imports")
    completed = subprocess.run([str(linter), "--no-cache"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                               timeout=120)
    # Then no layer imports one above it
    assert completed.returncode == 0, completed.stdout[-3000:]
    assert "1 kept, 0 broken" in completed.stdout


def test_the_runtime_imports_no_other_layer():
    graph = import_graph()
    upward = {(module, imported) for module in graph.find_children("handler") | graph.find_descendants("handler")
              for imported in graph.find_modules_directly_imported_by(module)
              if imported.split(".")[0] in PACKAGES and not imported.startswith("handler")}
    assert upward == set()


def test_no_module_takes_part_in_an_import_cycle():
    assert cycles(import_graph()) == []


def test_a_cycle_is_found_where_there_is_one(tmp_path, monkeypatch):
    # Given two modules importing each other
    package = tmp_path / "circle"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from circle import b\n")
    (package / "b.py").write_text("from circle import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    # When / Then
    assert cycles(grimp.build_graph("circle", cache_dir=None)) == [["circle.a", "circle.b"]]
