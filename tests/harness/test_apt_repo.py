"""The test hosts' local apt repository covers every package a role may install.

Test hosts have no route out: a role whose apt task names a package the repository lacks
would fail a converge with "Unable to locate package". These checks fail first, in a second,
naming the package and the place to add it (testhosts/image.py, REPO_PACKAGES).
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import yaml

from testhosts import image

REPO = Path(__file__).resolve().parents[2]
ROLES = REPO / "collections/ansible_collections/left4me/l4d2/roles"
SCRIPTS = ROLES / "overlays/files/scripts"
APT_MODULES = ("ansible.builtin.apt", "apt")
VARIABLE = re.compile(r"^\{\{\s*(\w+)\s*\}\}$")


def _tasks(tasks):
    """Every task in a task list, including those nested in blocks."""
    for task in tasks or []:
        yield task
        for key in ("block", "rescue", "always"):
            yield from _tasks(task.get(key))


def _task_lists(yaml_file: Path):
    """The task lists of a tasks file, or of each play of a playbook."""
    tree = yaml.safe_load(yaml_file.read_text()) or []
    if tree and "hosts" in tree[0]:
        for play in tree:
            for section in ("pre_tasks", "tasks", "post_tasks", "handlers"):
                yield play.get(section)
    else:
        yield tree


def _apt_packages(yaml_file: Path, variables: dict) -> list[str]:
    found = []
    for tasks in _task_lists(yaml_file):
        for task in _tasks(tasks):
            args = next((task[m] for m in APT_MODULES if m in task), None)
            if not isinstance(args, dict) or args.get("state", "present") == "absent":
                continue
            names = args.get("name", args.get("pkg", []))
            if isinstance(names, str):
                match = VARIABLE.match(names.strip())
                assert match or "{{" not in names, (
                    f"{yaml_file}: task {task.get('name')!r} names packages with an "
                    f"expression this check cannot resolve: {names}")
                names = variables[match.group(1)] if match else [names]
            found += names
    return found


def apt_installs() -> dict[str, set[str]]:
    """Package -> the files whose apt tasks install it (roles' tasks, molecule prepares)."""
    sources = []
    for role in sorted(d for d in ROLES.iterdir() if d.is_dir()):
        variables = {}
        for variables_file in (role / "defaults/main.yml", role / "vars/main.yml"):
            if variables_file.exists():
                variables.update(yaml.safe_load(variables_file.read_text()) or {})
        sources += [(f, variables) for f in sorted((role / "tasks").glob("*.yml"))]
    sources += [(f, {}) for f in sorted((REPO / "molecule").glob("*/*.yml"))
                if f.name != "molecule.yml"]
    installs: dict[str, set[str]] = {}
    for yaml_file, variables in sources:
        for package in _apt_packages(yaml_file, variables):
            installs.setdefault(package, set()).add(str(yaml_file.relative_to(REPO)))
    return installs


def test_the_check_finds_the_game_host_roles_packages():
    installs = apt_installs()
    # If these go missing the parser stopped seeing the role's apt tasks.
    for package in ("curl", "7zip", "lib32gcc-s1"):
        assert package in installs, f"no apt task installs {package}: {sorted(installs)}"


def test_every_package_an_apt_task_installs_is_in_the_local_repository():
    missing = {package: sorted(files) for package, files in apt_installs().items()
               if package not in image.REPO_PACKAGES}
    assert not missing, (
        "these packages are installed by an apt task but the test hosts' apt repository "
        f"lacks them; add them to REPO_PACKAGES in testhosts/image.py: {missing}")


def test_every_shipped_build_script_declares_the_commands_it_runs():
    for script in sorted(SCRIPTS.glob("*.sh")):
        lines = [line for line in script.read_text().splitlines()
                 if line.startswith("# requires:")]
        assert len(lines) == 1, f"{script.name}: needs one '# requires: CMD...' header line"
        assert lines[0].split(":", 1)[1].split(), f"{script.name}: its requires line is empty"


def test_the_image_names_dodge_the_old_harness_cleanup():
    # Older checkouts delete every debian-trixie-*.tar.zst and vm-* but theirs as stale.
    assert not fnmatch.fnmatch(image.image_path().name, "debian-*")
    assert not fnmatch.fnmatch(image.repo_path().name, "debian-*")
    assert not image.repo_path().name.startswith("vm-")


def test_the_image_holds_none_of_the_packages_the_roles_must_install():
    installed_by_roles = set(apt_installs())
    # A package both baked into the image and installed by a role would hide a role that
    # forgot it; python3 and sudo are the exceptions Ansible itself needs to log in.
    assert set(image.BASE_PACKAGES) & installed_by_roles <= {"python3", "sudo"}
