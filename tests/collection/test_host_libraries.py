"""The module_utils that roles copy to hosts verbatim import the standard library only.

Roles copy some files of the collection's plugins/module_utils to game hosts as
left4me_X.py, beside the helpers under roles/*/files that import them, and those run there
with `python3 -I`: no Ansible, no collection, no package from PyPI. Which files travel is
read from the roles, so a file a role starts to copy is held to the rule from then on.

A shipped file may import, besides the standard library, another file its role ships: as
`left4me_X` (the host's name), or as the collection's module_utils when an
`except ImportError` falls back to the host's name (the pattern of _mount.py and
_common.py: the first import works on the controller and in modules, the second on hosts).
A role that ships the files in the collection's package tree (game_instances, for
left4me-read: TREE below on the host) lets them import each other as the collection's
module_utils with no fallback.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
COLLECTION = PROJECT / "collections" / "ansible_collections" / "left4me" / "l4d2"
ROLES = COLLECTION / "roles"
MODULE_UTILS = COLLECTION / "plugins" / "module_utils"
PACKAGE = "ansible_collections.left4me.l4d2.plugins.module_utils."
HEADER = "# Shipped to hosts verbatim: standard library only"
SHIPPED = re.compile(r"plugins/module_utils/(_\w+)\.py")
TREE = "/ansible_collections/left4me/l4d2/plugins/module_utils"


def ships_tree(role: str) -> bool:
    """Whether the role installs its module_utils in the package tree (TREE) on hosts."""
    return any(TREE in path.read_text() for path in sorted((ROLES / role).glob("**/*.yml")))


def shipped_by_role() -> dict[str, set[str]]:
    """Role name -> the module_utils stems (`_common`) any of its files copies to hosts."""
    shipped: dict[str, set[str]] = {}
    for path in sorted(ROLES.glob("*/**/*.yml")):
        stems = set(SHIPPED.findall(path.read_text()))
        if stems:
            shipped.setdefault(path.relative_to(ROLES).parts[0], set()).update(stems)
    return shipped


def host_files() -> list[tuple[str, Path]]:
    """(role, file) for every file that runs on hosts as it is: shipped module_utils, helpers."""
    found = [(role, MODULE_UTILS / f"{stem}.py")
             for role, stems in shipped_by_role().items() for stem in sorted(stems)]
    found += [(path.relative_to(ROLES).parts[0], path)
              for path in sorted(ROLES.glob("*/files/**/*.py"))]
    return found


def guarded_imports(tree: ast.AST) -> dict[int, set[str]]:
    """id(import in a try body) -> what that try's `except ImportError` handlers import."""
    guarded: dict[int, set[str]] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Try):
            continue
        fallbacks = {name for handler in node.handlers if catches_import_error(handler)
                     for statement in handler.body for name in imported(statement)}
        for statement in node.body:
            for inner in ast.walk(statement):
                guarded[id(inner)] = fallbacks
    return guarded


def catches_import_error(handler: ast.ExceptHandler) -> bool:
    caught = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(name, ast.Name) and name.id in {"ImportError", "ModuleNotFoundError"}
               for name in caught)


def imported(node: ast.AST) -> list[str]:
    """The modules an import statement names ([] for any other node)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        module = "." * node.level + (node.module or "")
        if module == PACKAGE.rstrip("."):  # from ...module_utils import _common, _layout
            return [PACKAGE + alias.name for alias in node.names]
        return [module]
    return []


def import_problems(role: str, path: Path) -> list[str]:
    """Each import of PATH that would fail on a host of ROLE, as 'line N: import X'."""
    siblings = shipped_by_role().get(role, set())
    tree = ast.parse(path.read_text(), str(path))
    guarded = guarded_imports(tree)
    problems = []
    for node in ast.walk(tree):
        for name in imported(node):
            if not allowed(name, siblings, guarded.get(id(node), set()), ships_tree(role)):
                problems.append(f"line {node.lineno}: import {name}")
    return problems


def allowed(name: str, siblings: set[str], fallbacks: set[str], tree: bool = False) -> bool:
    if name == "__future__" or name.split(".")[0] in sys.stdlib_module_names:
        return True
    if name.startswith("left4me_"):
        return name.removeprefix("left4me") in siblings
    if name.startswith(PACKAGE):
        stem = name.removeprefix(PACKAGE)
        return stem in siblings and (tree or f"left4me{stem}" in fallbacks)
    return False


def test_the_roles_ship_the_libraries_the_layout_names():
    """A vanished match means the pattern above went stale, not that nothing travels."""
    shipped = shipped_by_role()
    assert {"_common", "_mount"} <= shipped.get("game_host", set()), shipped
    assert {"_common", "_workshop", "_steamcmd"} <= shipped.get("overlays", set()), shipped
    assert {"_read_request", "_reads"} <= shipped.get("game_instances", set()), shipped
    assert ships_tree("game_instances") and not ships_tree("game_host")


@pytest.mark.parametrize("role,path", host_files(),
                         ids=lambda v: v.name if isinstance(v, Path) else v)
def test_host_code_imports_the_standard_library_only(role, path):
    assert import_problems(role, path) == [], (
        f"{path.name} runs on {role}'s hosts as it is; import the standard library only,"
        f" or a module_utils file {role} ships beside it (with the host's name as fallback)")


def test_the_shipped_libraries_and_only_they_say_so():
    shipped = set().union(*shipped_by_role().values())
    for path in sorted(MODULE_UTILS.glob("_*.py")):
        says = HEADER in path.read_text()
        if path.stem in shipped:
            assert says, f"{path.name} is shipped to hosts: add the line {HEADER!r}"
        else:
            assert not says, f"{path.name} says {HEADER!r}, yet no role ships it"


def test_the_collection_readme_names_the_shipped_libraries():
    readme = (COLLECTION / "README.md").read_text()
    start = readme.find("travel to hosts verbatim")
    paragraph = readme[start:].split("\n\n")[0] if start >= 0 else ""
    for stem in set().union(*shipped_by_role().values()):
        assert f"`{stem}.py`" in paragraph, f"the README's host-library paragraph omits {stem}"


def test_a_third_party_import_is_refused():
    """The check itself: what fails on a host is found, what the pattern allows is not."""
    siblings = {"_common"}
    assert not allowed("yaml", siblings, set())
    assert not allowed("ansible.module_utils.basic", siblings, set())
    assert not allowed(PACKAGE + "_common", siblings, set())  # no host fallback
    assert not allowed(PACKAGE + "_instance", siblings, {"left4me_instance"})  # not shipped
    assert not allowed("left4me_instance", siblings, set())
    assert not allowed("._common", siblings, set())
    assert allowed(PACKAGE + "_common", siblings, {"left4me_common"})
    package_import = ast.parse(f"from {PACKAGE.rstrip('.')} import _common").body[0]
    assert imported(package_import) == [PACKAGE + "_common"]
    assert allowed("left4me_common", siblings, set())
    assert allowed("collections.abc", siblings, set())
    assert allowed(PACKAGE + "_common", siblings, set(), tree=True)  # the package tree
    assert not allowed(PACKAGE + "_instance", siblings, set(), tree=True)  # not shipped
