"""The collection as an artifact, and the engines that run it (ansible-runner as AWX does).

One booted host is shared by every test here: converged once from the built and installed
collection, then run again through ansible-runner's transmit | worker | process pipeline.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_support import (
    BUILD_LEFTOVERS,
    COLLECTION_SOURCE,
    PROJECT,
    Artifact,
    Converged,
    InstalledCollection,
    pinned_requirements,
    write_inventory,
)

from testhosts import host


@pytest.fixture(scope="session")
def collection_artifact(tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    """`ansible-galaxy collection build` of the collection as a checkout has it after tests."""
    work = tmp_path_factory.mktemp("artifact")
    source = work / "ansible_collections/left4me/l4d2"
    shutil.copytree(COLLECTION_SOURCE, source,
                    ignore=shutil.ignore_patterns("output", "__pycache__", ".pytest_cache"))
    for leftover in BUILD_LEFTOVERS:
        (source / leftover).parent.mkdir(parents=True, exist_ok=True)
        (source / leftover).write_text("left behind by a test run\n")
    subprocess.run(["ansible-galaxy", "collection", "build", "--output-path", str(work / "dist")],
                   cwd=source, check=True, capture_output=True, text=True)
    tarball = next((work / "dist").glob("left4me-l4d2-*.tar.gz"))
    with tarfile.open(tarball) as archive:
        members = archive.getnames()
    return Artifact(tarball, members)


@pytest.fixture(scope="session")
def clean_ansible(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv holding only ansible-core at the project's pins (bin directory)."""
    venv = tmp_path_factory.mktemp("clean-venv")
    pins = pinned_requirements()
    subprocess.run([sys.executable, "-m", "venv", "--clear", "--without-pip", str(venv)],
                   check=True)
    # The project venv's pip installs into the new one: no ensurepip round, pip's cache reused.
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin/python"),
                    "install", "--quiet", "--disable-pip-version-check",
                    f"ansible-core=={pins['ansible-core']}", f"jinja2=={pins['jinja2']}",
                    f"pyyaml=={pins['pyyaml']}"],
                   check=True, capture_output=True, text=True)
    return venv / "bin"


@pytest.fixture(scope="session")
def installed_collection(collection_artifact: Artifact, clean_ansible: Path,
                         tmp_path_factory: pytest.TempPathFactory) -> InstalledCollection:
    work = tmp_path_factory.mktemp("installed")
    config = work / "ansible.cfg"
    # What a user of the released collection writes: nothing that points into this checkout.
    config.write_text(
        "[defaults]\nhost_key_checking = True\ninterpreter_python = auto_silent\n"
        "retry_files_enabled = False\nroles_path = /nonexistent\n"
        "[ssh_connection]\npipelining = True\n"
    )
    installed = InstalledCollection(work / "collections", clean_ansible, config)
    subprocess.run([str(clean_ansible / "ansible-galaxy"), "collection", "install", "--offline",
                    "-p", str(installed.collections_path), str(collection_artifact.tarball)],
                   check=True, capture_output=True, text=True, env=installed.env(), cwd=work)
    return installed


@pytest.fixture(scope="session")
def converged_from_artifact(booted_host: host.TestHost, installed_collection: InstalledCollection,
                            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Converged]:
    """The shared booted host, converged by site.yml with the installed collection only."""
    inventory = write_inventory(tmp_path_factory.mktemp("inventory"), booted_host)
    result = subprocess.run(
        [str(installed_collection.ansible_bin / "ansible-playbook"), "-i", str(inventory),
         str(PROJECT / "playbooks/site.yml")],
        capture_output=True, text=True, env=installed_collection.env(),
        cwd=inventory, timeout=900,
    )
    yield Converged(booted_host, inventory, result)
