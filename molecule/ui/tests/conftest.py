"""testinfra straight over SSH to the booted UI host (key auth, sudo), not through Ansible.

Molecule hands testinfra an Ansible backend, which costs seconds per command on these
machines; the host is the same, reached the way an operator reaches it.
"""

import os
import sys

import pytest
import testinfra

sys.path.insert(0, os.environ["MOLECULE_PROJECT_DIRECTORY"])  # the testhosts package

from testhosts import host as testhosts  # noqa: E402


@pytest.fixture(scope="module")
def booted(_testinfra_host) -> testhosts.TestHost:
    return testhosts.load(_testinfra_host.backend.get_hostname())


@pytest.fixture(scope="module")
def host(booted):
    return testinfra.get_host(f"ssh://{booted.name}", ssh_config=booted.ssh_config, sudo=True)
