"""testinfra verify for game instances: a direct SSH connection, figures printed at the end."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import a2s
import pytest
import testinfra

sys.path.insert(0, os.environ["MOLECULE_PROJECT_DIRECTORY"])  # the testhosts package

from testhosts import host as testhosts  # noqa: E402

pytest_plugins = ["testhosts.pytest_report"]

PROJECT = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
PLATFORM = "mol-srv"
# The demo instances (inventories/demo/group_vars): name -> (port, its server.cfg hostname).
INSTANCES = {
    "coop1": (27015, "left4me demo coop"),
    "versus1": (27025, "left4me demo versus"),
}
FIGURES: list[str] = []


def figure(line: str) -> None:
    """A measured value for the end-of-run report (and the log)."""
    FIGURES.append(line)
    print(line)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.section("game instances: figures measured on the test host")
    for line in FIGURES:
        terminalreporter.line(line)


@pytest.fixture(scope="session")
def booted() -> testhosts.TestHost:
    return testhosts.load(PLATFORM)


@pytest.fixture(scope="session")
def srv(booted: testhosts.TestHost) -> testinfra.host.Host:
    """The host over SSH with sudo (testinfra's ansible backend costs ~4 s per test)."""
    return testinfra.get_host(f"ssh://{booted.name}", ssh_config=booted.ssh_config, sudo=True)


def ansible(*args: str) -> subprocess.CompletedProcess[str]:
    """Run an ansible CLI (ansible, ansible-playbook) from the project, against this host."""
    tool, *rest = args
    return subprocess.run(
        [str(Path(sys.executable).parent / tool), "-i", os.environ["MOLECULE_INVENTORY_FILE"],
         *rest],
        cwd=PROJECT, capture_output=True, text=True, check=False, timeout=300,
        env={**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1",
             "ANSIBLE_CALLBACK_RESULT_FORMAT": "json"},
    )


def a2s_name(address: str, port: int, timeout: float = 1.0) -> str:
    return a2s.info((address, port), timeout=timeout).server_name


def wait_for_a2s(address: str, port: int, limit: float) -> float:
    """Seconds until the server answers A2S_INFO; fails the test after `limit`."""
    started = time.monotonic()
    while True:
        try:
            a2s.info((address, port), timeout=0.3)
            return time.monotonic() - started
        except (TimeoutError, OSError):
            pass
        elapsed = time.monotonic() - started
        assert elapsed < limit, f"{address}:{port} did not answer A2S within {limit} s"
        time.sleep(0.1)


def main_pid(srv: testinfra.host.Host, name: str) -> int:
    return int(srv.check_output(f"systemctl show -p MainPID --value left4me-server@{name}"))
