"""Helpers for the engine tests: pins, inventories, and what the fixtures hand out."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from testhosts import host

PROJECT = Path(__file__).resolve().parents[2]
COLLECTION_SOURCE = PROJECT / "collections/ansible_collections/left4me/l4d2"
DEMO_GROUP_VARS = PROJECT / "inventories/demo/group_vars"

# What a developer's or CI's checkout leaves inside the collection directory: ansible-test
# output, bytecode, pytest and lint caches. None of it may reach the published tarball.
BUILD_LEFTOVERS = (
    "tests/output/junit/python3.11-sanity.xml",
    "plugins/modules/__pycache__/srcds_instance.cpython-311.pyc",
    "tests/unit/.pytest_cache/v/cache/lastfailed",
    ".ansible/tmp/lint-cache",
    "roles/game_host/tasks/main.yml.orig",
    "left4me-l4d2-0.0.9.tar.gz",
)


def pinned_requirements() -> dict[str, str]:
    """name -> version from requirements.txt, the project's one place for pins."""
    pins: dict[str, str] = {}
    for line in (PROJECT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].split(";", 1)[0].strip()  # no comment, no marker
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.strip()
    return pins


def write_inventory(directory: Path, target: host.TestHost) -> Path:
    """An inventory like molecule's: the booted host in l4d2_hosts, the demo world's settings."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copytree(DEMO_GROUP_VARS, directory / "group_vars")
    (directory / "hosts.yml").write_text(
        "l4d2_hosts:\n"
        "  hosts:\n"
        f"    {target.name}:\n"
        f"      ansible_host: {target.address}\n"
        f"      ansible_user: {target.user}\n"
        f"      ansible_ssh_private_key_file: {target.identity_file}\n"
        f"      ansible_ssh_common_args: -F {target.ssh_config}\n"
    )
    return directory


@dataclass(frozen=True)
class Artifact:
    tarball: Path
    members: list[str]


@dataclass(frozen=True)
class InstalledCollection:
    collections_path: Path
    ansible_bin: Path
    config: Path

    def env(self) -> dict[str, str]:
        """Only the installed artifact is visible: no repo collections/, no repo ansible.cfg."""
        return {
            "PATH": f"{self.ansible_bin}:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(Path.home()),
            "LANG": "C.UTF-8",
            "ANSIBLE_CONFIG": str(self.config),
            "ANSIBLE_COLLECTIONS_PATH": str(self.collections_path),
        }


@dataclass(frozen=True)
class Converged:
    host: host.TestHost
    inventory: Path
    result: subprocess.CompletedProcess[str]
