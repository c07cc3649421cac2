"""testinfra straight over SSH to the booted host (key auth, sudo), not through Ansible.

Molecule hands testinfra an Ansible backend, which costs seconds per command on these
machines; the host is the same, reached the way an operator reaches it.
"""

import pytest
import testinfra

from testhosts import host as testhosts


@pytest.fixture(scope="module")
def host(_testinfra_host):
    booted = testhosts.load(_testinfra_host.backend.get_hostname())
    return testinfra.get_host(f"ssh://{booted.name}", ssh_config=booted.ssh_config, sudo=True)
