"""The UI's import graph, read from the code (ast): no circle, no import running back up.

Layers, top to bottom: the entry points and pages (ui/*.py, ui/pages/, ui/overlay_editors/),
the composition root (left4me_ui.boot and the command line), then the domain. Job kinds,
finish hooks, secret providers and builders are declared in boot, never registered by
importing a module, so the domain imports nothing that imports it: its graph is acyclic,
and every import in it sits at the top of its file (an import hidden in a function is how
a circle is kept out of sight).
"""

from __future__ import annotations

import ast
from pathlib import Path

UI = Path(__file__).resolve().parents[2] / "ui"
PACKAGE = "left4me_ui"
ROOTS = {"left4me_ui.boot", "left4me_ui.__main__"}


def module_name(path: Path) -> str:
    parts = path.relative_to(UI).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    """Every UI module but the package's empty __init__ (`from left4me_ui import x` names x)."""
    return {module_name(p): p for p in UI.rglob("*.py")
            if "__pycache__" not in p.parts and module_name(p) != PACKAGE}


def imports(path: Path, known: set[str]) -> list[tuple[str, bool]]:
    """(imported UI module, whether the import is at the file's top level) per import."""
    tree = ast.parse(path.read_text(), str(path))
    top = {id(node) for node in tree.body}
    for node in tree.body:  # `if TYPE_CHECKING:` blocks count as top level
        if isinstance(node, ast.If):
            top.update(id(n) for n in node.body)
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name in known:
                found.append((name, id(node) in top))
    return found


def graph(top_only: bool = False) -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: {target for target, top in imports(path, known)
                   if target != name and (top or not top_only)}
            for name, path in found.items()}


def floors(edges: dict[str, set[str]]) -> dict[str, int]:
    """Each module's floor: 0 imports no UI module, else one above the highest it imports."""
    floor: dict[str, int] = {}

    def visit(node: str, path: tuple[str, ...]) -> int:
        if node not in floor:
            below = [visit(t, (*path, node)) for t in edges[node] if t not in path]
            floor[node] = 1 + max(below, default=-1)
        return floor[node]

    for node in edges:
        visit(node, ())
    return floor


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def layer(name: str) -> int:
    """2: entry points and pages; 1: the composition root; 0: the domain."""
    if name in ROOTS:
        return 1
    return 0 if name == PACKAGE or name.startswith(PACKAGE + ".") else 2


def upward(edges: dict[str, set[str]]) -> list[str]:
    """Imports to a higher layer, or to a module on the same or a higher floor of the
    graph of top-level imports (an import that runs back up, as a deferred one does)."""
    floor = floors(graph(top_only=True))
    return sorted(f"{source} -> {target}" for source, targets in edges.items()
                  for target in targets
                  if layer(target) > layer(source) or floor[target] >= floor[source])


def test_the_ui_has_no_import_circle():
    assert circles(graph()) == []


def test_no_import_runs_back_up_the_layers():
    assert upward(graph()) == []


def test_the_domain_imports_its_own_modules_at_the_top_of_the_file_only():
    found = modules()
    known = set(found)
    hidden = sorted(f"{name} imports {target} inside a function"
                    for name, path in found.items() if layer(name) == 0
                    for target, top in imports(path, known) if not top)
    assert hidden == []


def test_the_domain_has_no_streamlit():
    found = [name for name, path in modules().items() if layer(name) < 2
             and any(isinstance(n, (ast.Import, ast.ImportFrom))
                     and "streamlit" in ast.unparse(n)
                     for n in ast.walk(ast.parse(path.read_text())))]
    assert found == []
