"""Fixtures for the sandbox scenario: a direct SSH testinfra host and the probe runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import testinfra

PROJECT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).parents[3]))
SCENARIO = Path(__file__).resolve().parents[1]
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))

from testhosts import enforcement  # noqa: E402
from testhosts import host as testhosts  # noqa: E402

NOT_PROVEN: dict[str, str] = {}


@pytest.fixture(scope="module")
def booted(host):
    """The scenario's test host as the harness describes it (address, nsenter)."""
    return testhosts.load(host.backend.get_hostname())


@pytest.fixture(scope="module")
def ssh(booted):
    """testinfra straight over SSH: ~100x cheaper per command than the ansible backend."""
    return testinfra.get_host(f"ssh://{booted.name}", ssh_config=booted.ssh_config, sudo=True)


@pytest.fixture(scope="module")
def enforced(booted) -> dict[str, enforcement.Finding]:
    return {f.directive: f for f in enforcement.probe(booted)}


def run_probes(booted, probes: list[dict]) -> dict[str, dict]:
    """Run probe scripts through the module (probes.yml); name -> module result."""
    with tempfile.TemporaryDirectory(prefix="left4me-probes-") as scratch:
        variables = Path(scratch, "vars.json")
        report = Path(scratch, "report.json")
        variables.write_text(json.dumps({"sandbox_probes": probes,
                                         "sandbox_report": str(report)}))
        run = subprocess.run(
            ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
             "--limit", booted.name, "-e", f"@{variables}", str(SCENARIO / "probes.yml")],
            cwd=PROJECT, capture_output=True, text=True, check=False,
            # Several engineers share two cores: an SSH hiccup must not void the battery.
            env={**os.environ, "ANSIBLE_SSH_RETRIES": "3"},
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        return json.loads(report.read_text())


def pytest_terminal_summary(terminalreporter) -> None:
    if NOT_PROVEN:
        terminalreporter.section("sandbox directives NOT proven on this host")
        for directive, why in NOT_PROVEN.items():
            terminalreporter.line(f"NOT PROVEN  {directive}: {why}")
