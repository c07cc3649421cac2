"""Shared fixtures: booted systemd test hosts for tests outside molecule."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import testinfra

from testhosts import host
from testhosts.pytest_report import pytest_terminal_summary, report_on  # noqa: F401 (hook)

PROJECT = Path(__file__).resolve().parents[1]


def _need_root_and_nspawn() -> None:
    if os.geteuid() != 0 or not shutil.which("systemd-nspawn"):
        pytest.skip("test hosts need root and systemd-nspawn (scripts/test installs them)")


@pytest.fixture(scope="session")
def booted_host() -> Iterator[host.TestHost]:
    """A real systemd host (trixie under systemd-nspawn), destroyed at the end of the session."""
    _need_root_and_nspawn()
    booted = host.create(host.unique_name("pt"))
    report_on(booted)
    yield booted
    host.destroy(booted.name)


def inventory_yaml(target: host.TestHost, *, ssh_config: str | None = None,
                   more_hosts: str = "") -> str:
    """An inventory naming `target` in l4d2_hosts, reached over SSH as the harness reaches
    it (its key, its ssh_config's checked host key); more_hosts: further hosts' YAML lines."""
    return f"""
l4d2_hosts:
  hosts:
    {target.name}:
      ansible_host: {target.address}
      ansible_user: {target.user}
      ansible_ssh_private_key_file: {target.identity_file}
      ansible_ssh_common_args: -F {ssh_config or target.ssh_config}
{more_hosts}"""


@pytest.fixture(scope="session")
def host_inventory() -> Callable[..., str]:
    """inventory_yaml, for tests (they cannot import a conftest)."""
    return inventory_yaml


@pytest.fixture(scope="session")
def booted_testinfra(booted_host: host.TestHost) -> testinfra.host.Host:
    """testinfra over SSH (key auth, sudo), the way an operator reaches a production host."""
    return testinfra.get_host(f"ssh://{booted_host.name}", ssh_config=booted_host.ssh_config,
                              sudo=True)



def write_demo_inventory(booted: host.TestHost, directory: Path) -> Path:
    """An inventory of `booted` in group l4d2_hosts with the demo world's group_vars."""
    (directory / "hosts.yml").write_text(inventory_yaml(booted))
    (directory / "group_vars").symlink_to(PROJECT / "inventories/demo/group_vars")
    return directory


def run_site(inventory: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """ansible-playbook playbooks/site.yml on that inventory, as an operator runs it."""
    return subprocess.run(
        ["ansible-playbook", "-i", str(inventory), *options, "playbooks/site.yml"], cwd=PROJECT,
        capture_output=True, text=True, check=False, timeout=1800,
        env={**os.environ, "ANSIBLE_CONFIG": str(PROJECT / "ansible.cfg"),
             "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0",
             "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})


@pytest.fixture(scope="session")
def demo_inventory(booted_host: host.TestHost, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """booted_host in group l4d2_hosts with the demo world's group_vars, converged by site.yml.

    One converge for every test that needs a game host with servers: the UI's domain and
    browser tests share it (their own servers take ports the inventory leaves free).
    """
    directory = write_demo_inventory(booted_host, tmp_path_factory.mktemp("demo-inventory"))
    converge = run_site(directory)
    assert converge.returncode == 0, converge.stdout[-4000:] + converge.stderr[-2000:]
    return directory
