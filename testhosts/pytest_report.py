"""pytest plugin: print, by name, every directive a test host cannot enforce.

A test that passes on a host which silently ignores a directive proves nothing about that
directive, so each run that used test hosts ends with this report. Hosts are registered
with `report_on(host)`; under molecule, the scenario's platforms are probed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from testhosts import enforcement, host

_findings: dict[str, list[enforcement.Finding]] = {}


def report_on(target: host.TestHost) -> None:
    """Probe now (the host may be gone by the end of the run) and report at the end."""
    _findings[target.name] = enforcement.probe(target)


def _molecule_platforms() -> list[str]:
    scenario = os.environ.get("MOLECULE_SCENARIO_DIRECTORY")
    if not scenario:
        return []
    config = yaml.safe_load((Path(scenario) / "molecule.yml").read_text())
    return [platform["name"] for platform in config.get("platforms", [])]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for name in _molecule_platforms():
        if name in host.names() and name not in _findings:
            _findings[name] = enforcement.probe(host.load(name))
    for name, findings in _findings.items():
        unenforced = [f for f in findings if not f.enforced]
        terminalreporter.section(f"directives test host {name} cannot enforce (not proven here)")
        for finding in unenforced:
            terminalreporter.line(f"NOT ENFORCED  {finding.directive}: {finding.evidence}")
