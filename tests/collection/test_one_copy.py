"""Copies of one fact that cannot import it agree with its single source.

The id rule, the default paths and the runtime user live in the collection's
plugins/module_utils/_common.py. Role defaults and argument specs, Jinja checks,
READMEs and module docs must repeat some of them (YAML cannot import Python); each
copy is found here and compared with the source, so changing one without the others fails.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible_collections.left4me.l4d2.plugins.doc_fragments.common import ModuleDocFragment
from ansible_collections.left4me.l4d2.plugins.module_utils import _common as common

PROJECT = Path(__file__).resolve().parents[2]
COLLECTION = PROJECT / "collections" / "ansible_collections" / "left4me" / "l4d2"
ROLES = COLLECTION / "roles"
MODULES = COLLECTION / "plugins" / "modules"
MODULE_UTILS = COLLECTION / "plugins" / "module_utils"
DOC_FRAGMENTS = "ansible_collections.left4me.l4d2.plugins.doc_fragments"

# Anything shaped like the id rule: a first-character class, a class, a repeat count.
ID_LIKE = re.compile(r"\[a-z0-9\]\[[^\]\n]*\]\{[^}\n]*\}")
ID_SENTENCE = ("1 to 64 characters from C(a-z), C(0-9), C(_) and C(-), starting with a letter"
               " or digit")


def text_files() -> list[Path]:
    roots = [ROLES, PROJECT / "playbooks", COLLECTION / "README.md", PROJECT / "README.md",
             PROJECT / "docs"]
    files: list[Path] = []
    for root in roots:
        candidates = [root] if root.is_file() else sorted(root.rglob("*"))
        files += [p for p in candidates if p.is_file() and p.suffix in
                  {".yml", ".yaml", ".j2", ".md", ""}]
    return files


def id_copies() -> list[tuple[Path, str]]:
    return [(path, match) for path in text_files()
            for match in ID_LIKE.findall(path.read_text(encoding="utf-8", errors="replace"))]


def test_the_id_rule_is_copied_where_yaml_needs_it():
    where = {path.relative_to(COLLECTION).as_posix() for path, _ in id_copies()
             if COLLECTION in path.parents}
    # The places that check an id without Python: a vanished copy means a check vanished.
    assert {"roles/overlays/tasks/main.yml", "roles/game_instances/tasks/main.yml"} <= where


@pytest.mark.parametrize("path,copy", id_copies(), ids=lambda v: getattr(v, "name", v))
def test_every_copy_of_the_id_rule_is_the_one_in_common(path, copy):
    assert copy == common.ID_PATTERN, f"{path}: {copy}"


def module_docs() -> dict[str, dict]:
    """Each module's DOCUMENTATION as written, its doc fragments not merged in."""
    docs = {}
    for path in sorted(MODULES.glob("*.py")):
        source = path.read_text()
        match = re.search(r'^DOCUMENTATION = r"""(.*?)^"""', source, re.S | re.M)
        docs[path.stem] = yaml.safe_load(match.group(1))
    return docs


def module_docs_as_read() -> dict[str, dict]:
    """Each module's documentation as ansible-doc shows it, its doc fragments merged in."""
    names = [f"left4me.l4d2.{path.stem}" for path in sorted(MODULES.glob("*.py"))]
    ansible_doc = shutil.which("ansible-doc", path=str(Path(sys.executable).parent)) \
        or shutil.which("ansible-doc")
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(COLLECTION.parents[2])}
    run = subprocess.run([ansible_doc, "--json", "-t", "module", *names], env=env,
                         capture_output=True, text=True, check=True, timeout=120)
    return {name.rsplit(".", 1)[1]: entry["doc"] for name, entry in json.loads(run.stdout).items()}


def test_module_docs_state_the_id_rule_in_one_sentence():
    described = {
        module: " ".join(" ".join(option["description"]) if isinstance(option["description"], list)
                         else option["description"] for option in [doc["options"][key]])
        for module, doc in module_docs_as_read().items()
        for key in ("id", "name") if key in doc["options"]
    }
    assert set(described) == {"files_overlay", "instance_mount", "script_overlay",
                              "srcds_instance", "workshop_overlay", "rcon", "server_logs"}
    for module, text in described.items():
        assert ID_SENTENCE in " ".join(text.split()), module
    low, high = re.fullmatch(r".*\{(\d+),(\d+)\}", common.ID_PATTERN).groups()
    assert (1 + int(low), 1 + int(high)) == (1, 64)  # what the sentence says


def fragment_options(name: str) -> dict:
    return yaml.safe_load(getattr(ModuleDocFragment, name))["options"]


def test_doc_fragment_defaults_are_the_ones_in_common():
    assert fragment_options("STATE_DIR")["state_dir"]["default"] == common.DEFAULT_STATE_DIR
    assert fragment_options("CONFIG_DIR")["config_dir"]["default"] == common.DEFAULT_CONFIG_DIR
    assert fragment_options("OWNER")["owner"]["default"] == common.DEFAULT_RUNTIME_USER


def test_script_overlay_documents_the_common_defaults():
    options = module_docs()["script_overlay"]["options"]
    assert options["user"]["default"] == common.DEFAULT_RUNTIME_USER
    assert options["masked_paths"]["default"] == [common.DEFAULT_CONFIG_DIR]


def test_no_module_documents_the_shared_options_itself():
    """They come from the doc fragment, so their text and default exist once."""
    fragment = "left4me.l4d2.common."
    for module, doc in module_docs().items():
        for option in ("state_dir", "config_dir"):
            assert option not in doc["options"], f"{module} documents {option} itself"
        extends = doc.get("extends_documentation_fragment", [])
        if module != "srcds_install":
            assert fragment + "state_dir" in extends, module


def test_no_module_documents_what_its_fragments_document():
    """ansible-doc would let the module's own text win, silently; the fragment's is the one."""
    for module, doc in module_docs().items():
        for name in doc.get("extends_documentation_fragment", []):
            file, fragment = name.removeprefix("left4me.l4d2.").split(".")
            source = importlib.import_module(f"{DOC_FRAGMENTS}.{file}").ModuleDocFragment
            documented = yaml.safe_load(getattr(source, fragment.upper()))
            for key in ("options", "attributes"):
                both = set(documented.get(key) or {}) & set(doc.get(key) or {})
                assert not both, f"{module} documents {sorted(both)} itself and extends {name}"


def role_yaml(role: str, path: str) -> dict:
    return yaml.safe_load((ROLES / role / path).read_text())


GAME_HOST = role_yaml("game_host", "defaults/main.yml")


def test_game_host_defaults_are_the_ones_in_common():
    assert GAME_HOST["game_host_state_dir"] == common.DEFAULT_STATE_DIR
    assert GAME_HOST["game_host_config_dir"] == common.DEFAULT_CONFIG_DIR
    assert GAME_HOST["game_host_user"] == common.DEFAULT_RUNTIME_USER


FOLLOWS = re.compile(r"\{\{ (game_host_\w+) \| default\('([^']*)'\) \}\}")


def role_defaults() -> list[tuple[str, str, object]]:
    return [(role.name, name, value) for role in sorted(ROLES.iterdir())
            if (role / "defaults" / "main.yml").exists()
            for name, value in (role_yaml(role.name, "defaults/main.yml") or {}).items()]


def test_roles_read_the_host_layout_from_game_host():
    """A role working on game hosts takes the paths it shares from game_host's variables."""
    on_game_hosts = {role for role, _name, value in role_defaults()
                     if role != "game_host" and isinstance(value, str) and "game_host_" in value}
    assert {"overlays", "game_instances"} <= on_game_hosts
    for role, name, value in role_defaults():
        if role not in on_game_hosts or not isinstance(value, str):
            continue
        for fact in (common.DEFAULT_STATE_DIR, common.DEFAULT_CONFIG_DIR,
                     GAME_HOST["game_host_libexec_dir"], GAME_HOST["game_host_unit_dir"]):
            if value == fact:
                pytest.fail(f"{role}: {name} repeats {fact!r}; follow game_host's variable")


@pytest.mark.parametrize(
    "role,name,value",
    [entry for entry in role_defaults() if isinstance(entry[2], str) and FOLLOWS.search(entry[2])],
    ids=lambda v: v if isinstance(v, str) and not v.startswith("{") else "",
)
def test_a_fallback_for_game_host_equals_game_hosts_default(role, name, value):
    variable, fallback = FOLLOWS.search(value).groups()
    assert fallback == GAME_HOST[variable], f"{role}: {name}"


def argument_spec_defaults() -> list[tuple[str, str, object, object]]:
    found = []
    for role in sorted(ROLES.iterdir()):
        spec_file = role / "meta" / "argument_specs.yml"
        defaults_file = role / "defaults" / "main.yml"
        if not spec_file.exists() or not defaults_file.exists():
            continue
        defaults = yaml.safe_load(defaults_file.read_text()) or {}
        options = yaml.safe_load(spec_file.read_text())["argument_specs"]["main"]["options"]
        found += [(role.name, name, option["default"], defaults[name])
                  for name, option in options.items() if "default" in option and name in defaults
                  # a value derived from other variables has no literal to compare
                  and not (isinstance(defaults[name], str) and "{{" in defaults[name]
                           and not FOLLOWS.fullmatch(defaults[name]))]
    return found


@pytest.mark.parametrize("role,name,documented,value", argument_spec_defaults(),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_argument_specs_document_the_defaults_the_role_uses(role, name, documented, value):
    follows = FOLLOWS.fullmatch(value) if isinstance(value, str) else None
    if follows:
        value = GAME_HOST[follows.group(1)]
    assert documented == value, f"{role}: {name}"


def installed_libraries() -> list[tuple[str, str, str]]:
    """(role, module_utils file, installed name) for each library a role copies to hosts."""
    found = []
    for tasks in sorted(ROLES.glob("*/tasks/*.yml")):
        text = tasks.read_text()
        role = tasks.parents[1].name
        for src, dest in re.findall(r"plugins/module_utils/(_\w+\.py)\"\n\s+dest: \"?([^\"\n]+)",
                                    text):
            found.append((role, src, dest.rsplit("/", 1)[-1]))
    return found


def test_every_host_library_has_the_libraries_it_imports_beside_it():
    libraries = installed_libraries()
    assert libraries, "no role installs a module_utils file; the pattern above is stale"
    for role, src, _dest in libraries:
        source = (MODULE_UTILS / src).read_text()
        for name in re.findall(r"^\s*(?:from|import) left4me_(\w+)", source, re.M):
            assert (role, f"_{name}.py", f"left4me_{name}.py") in libraries, (role, src, name)
    for role, src, dest in libraries:
        assert dest == "left4me" + src, f"{role} installs {src} as {dest}"


def test_game_instances_limits_are_srcds_instances_defaults():
    from ansible_collections.left4me.l4d2.plugins.module_utils import _instance

    defaults = yaml.safe_load((ROLES / "game_instances" / "defaults" / "main.yml").read_text())
    spec = yaml.safe_load((ROLES / "game_instances" / "meta" / "argument_specs.yml").read_text())
    documented = spec["argument_specs"]["main"]["options"]["game_instances_limits"]["default"]
    assert defaults["game_instances_limits"] == documented
    assert {k: str(v) for k, v in defaults["game_instances_limits"].items()} == {
        k: str(v) for k, v in _instance.LIMIT_DEFAULTS.items()}
