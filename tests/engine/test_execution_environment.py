"""The execution environment definition AWX builds its image from (ansible-builder v3)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from engine_support import PROJECT, pinned_requirements

DEFINITION = PROJECT / "execution-environment.yml"


def definition() -> dict:
    return yaml.safe_load(DEFINITION.read_text())


def requirement_pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, separator, version = line.partition("==")
            assert separator, f"{path.name}: {line!r} is not pinned with =="
            pins[name.strip().lower()] = version.strip()
    return pins


def builder_create(definition_file: Path, context: Path) -> subprocess.CompletedProcess[str]:
    """`ansible-builder create`: writes the build context, needs no container engine."""
    return subprocess.run(
        ["ansible-builder", "create", "--file", str(definition_file), "--context", str(context),
         "--output-filename", "Containerfile"],
        capture_output=True, text=True, timeout=120,
    )


def test_execution_environment_pins_are_the_projects_pins() -> None:
    """requirements.txt stays the one place for pins: the EE may only repeat them."""
    project_pins = pinned_requirements()
    dependencies = definition()["dependencies"]
    ee_pins = requirement_pins(PROJECT / dependencies["python"])
    for engine in ("ansible_core", "ansible_runner"):
        name, _, version = dependencies[engine]["package_pip"].partition("==")
        ee_pins[name.lower()] = version
    assert ee_pins == {name: project_pins[name] for name in ee_pins}
    assert {"ansible-core", "ansible-runner", "jinja2", "pyyaml"} <= set(ee_pins)


def test_builder_creates_the_build_context(tmp_path: Path) -> None:
    result = builder_create(DEFINITION, tmp_path / "context")
    assert result.returncode == 0, result.stderr
    containerfile = (tmp_path / "context/Containerfile").read_text()
    pins = pinned_requirements()
    assert (f'ANSIBLE_INSTALL_REFS="ansible-core=={pins["ansible-core"]} '
            f'ansible-runner=={pins["ansible-runner"]}"') in containerfile
    assert 'EE_BASE_IMAGE="quay.io/centos/centos:stream9"' in containerfile
    build = tmp_path / "context/_build"
    assert (build / "requirements.txt").read_text() == (PROJECT / "requirements-ee.txt").read_text()
    assert (build / "bindep.txt").read_text() == (PROJECT / "bindep.txt").read_text()


@pytest.mark.parametrize(("mistake", "edit", "message"), [
    ("misspelt key", lambda text: text.replace("\nimages:", "\nimage:"),
     "'image' was unexpected"),
    ("missing requirements file", lambda text: text.replace("requirements-ee.txt", "nothere.txt"),
     "nothere.txt does not exist"),
    ("old schema version", lambda text: text.replace("version: 3", "version: 9"),
     "version"),
])
def test_builder_refuses_a_bad_definition(tmp_path: Path, mistake: str, edit, message: str) -> None:
    for companion in ("bindep.txt", "requirements-ee.txt"):
        shutil.copy2(PROJECT / companion, tmp_path / companion)
    bad = tmp_path / "execution-environment.yml"
    bad.write_text(edit(DEFINITION.read_text()))
    result = builder_create(bad, tmp_path / "context")
    assert result.returncode != 0, mistake
    assert message in result.stderr + result.stdout
    assert not (tmp_path / "context/Containerfile").exists()
