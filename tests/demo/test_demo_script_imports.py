"""scripts/demo's Python (the part that populates the UI) names the domain as it is: every
import resolves and every `module.function` it calls exists, checked in a second rather than
after the demo's boot and converge (a module moved under it once broke the README's demo)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]


def demo_python() -> ast.Module:
    text = (PROJECT / "scripts" / "demo").read_text()
    start = text.index("python - <<'PY'\n") + len("python - <<'PY'\n")
    return ast.parse(text[start:text.index("\nPY\n", start)])


def test_the_demo_scripts_imports_and_calls_resolve(monkeypatch):
    monkeypatch.syspath_prepend(str(PROJECT / "ui"))
    tree = demo_python()
    modules = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module.startswith("left4me_ui"):
            for alias in node.names:
                parent = importlib.import_module(node.module)
                found = getattr(parent, alias.name, None)
                if found is None:  # a submodule not imported by its package
                    found = importlib.import_module(f"{node.module}.{alias.name}")
                modules[alias.asname or alias.name] = found
    assert "workshop" in modules and "servers" in modules, sorted(modules)
    called = {(node.value.id, node.attr) for node in ast.walk(tree)
              if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
              and node.value.id in modules}
    missing = [f"{name}.{attr}" for name, attr in sorted(called)
               if not hasattr(modules[name], attr)]
    assert not missing, f"scripts/demo calls what the domain no longer has: {missing}"
