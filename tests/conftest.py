"""Shared fixtures: booted systemd test hosts for tests outside molecule."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
import testinfra

from testhosts import host
from testhosts.pytest_report import pytest_terminal_summary, report_on  # noqa: F401 (hook)


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


@pytest.fixture(scope="session")
def booted_testinfra(booted_host: host.TestHost) -> testinfra.host.Host:
    """testinfra over SSH (key auth, sudo), the way an operator reaches a production host."""
    return testinfra.get_host(f"ssh://{booted_host.name}", ssh_config=booted_host.ssh_config,
                              sudo=True)

