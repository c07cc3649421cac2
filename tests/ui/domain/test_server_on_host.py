"""A server's whole life through the domain layer on a host converged with site.yml.

create (ports allocated, RCON password generated) -> it answers A2S and RCON with that
password -> blueprint changed: "restart to apply" -> restart -> stop -> delete. Every step
is a playbooks/server.yml job run by ansible-runner, as the UI runs it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from domain_helpers import with_settings
from rcon.source import Client

from left4me_ui import blueprints, jobs, servers, status
from left4me_ui.core import Core
from left4me_ui.inventory import load_inventory
from left4me_ui.settings import PROJECT_DIR
from testhosts import host

pytestmark = pytest.mark.testhost


@pytest.fixture(scope="module")
def converged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[host.TestHost, Path]]:
    """A fresh host, converged by site.yml with one files overlay and no servers of its own."""
    if os.geteuid() != 0:
        pytest.skip("test hosts need root and systemd-nspawn (scripts/test installs them)")
    booted = host.create(host.unique_name("ui"))
    try:
        inventory = tmp_path_factory.mktemp("converged") / "hosts.yml"
        inventory.write_text(f"""
l4d2_hosts:
  hosts:
    {booted.name}:
      ansible_host: {booted.address}
      ansible_user: {booted.user}
      ansible_ssh_private_key_file: {booted.identity_file}
      ansible_ssh_common_args: -F {booted.ssh_config}
  vars:
    game_host_steamcmd_standin: true
    game_instances_ip_address_allow: [169.254.77.0/24, localhost]
    overlays_list:
      - id: ui-test
        kind: files
        files:
          - dest: left4dead2/cfg/ui-test.cfg
            content: "sv_tags ui-test\\n"
""")
        site = subprocess.run(
            [str(PROJECT_DIR / ".venv/bin/ansible-playbook"), "-i", str(inventory),
             "playbooks/site.yml"], cwd=PROJECT_DIR, capture_output=True, text=True,
            env={**os.environ, "ANSIBLE_CONFIG": str(PROJECT_DIR / "ansible.cfg")},
            timeout=900, check=False)
        assert site.returncode == 0, site.stdout[-3000:] + site.stderr[-2000:]
        yield booted, inventory
    finally:
        host.destroy(booted.name)


@pytest.fixture
def host_core(core: Core, converged) -> Core:
    with_settings(core, inventory=converged[1])
    core.inventory_loader = load_inventory
    return core


def _run(core: Core, actor, job_id: int) -> jobs.Job:
    job = jobs.run_next(core)
    assert job.id == job_id
    log = "\n".join(e.text for e in jobs.events(core, actor, job_id))
    assert job.state == jobs.SUCCEEDED, f"{job.error}\n{log[-3000:]}"
    return job


def test_create_play_change_restart_stop_delete(host_core, converged, alice):
    booted, _ = converged
    blueprint = blueprints.create(
        host_core, alice, "coop", ["ui-test"],
        blueprints.BlueprintSettings(hostname="Alice UI test", maxplayers=4))
    server_id, job_id = servers.create(host_core, alice, "alice1", booted.name, blueprint.id)
    job = _run(host_core, alice, job_id)
    assert job.done_tasks == job.expected_tasks == 1  # server.yml: one module call
    server = servers.get(host_core, alice, server_id)
    assert server.connect_line == f"connect {booted.address}:{server.port}"
    answer = status.a2s_info(host_core, alice, server_id, timeout=3)
    assert answer == status.A2SAnswer("Alice UI test", "c1m1_hotel", 0, 4)
    states = status.systemd_states(host_core, alice, booted.name)
    assert states[server_id].active == "active" and states[server_id].sub == "running"
    password = servers.rcon_password(host_core, alice, server_id)
    with Client(booted.address, server.port, passwd=password, timeout=10) as rcon:
        assert "Alice UI test" in rcon.run("hostname")

    blueprints.update(host_core, alice, blueprint.id,
                      config=blueprints.BlueprintSettings(hostname="Alice UI test",
                                                          maxplayers=4, map="c2m1_highway"))
    assert servers.get(host_core, alice, server_id).needs_restart
    assert status.a2s_info(host_core, alice, server_id, timeout=3).map_name == "c1m1_hotel"
    _run(host_core, alice, servers.restart(host_core, alice, server_id))
    assert not servers.get(host_core, alice, server_id).needs_restart
    assert status.a2s_info(host_core, alice, server_id, timeout=3).map_name == "c2m1_highway"

    _run(host_core, alice, servers.stop(host_core, alice, server_id))
    assert status.a2s_info(host_core, alice, server_id, timeout=1) is None
    assert status.systemd_states(host_core, alice, booted.name)[server_id].active == "inactive"

    _run(host_core, alice, servers.delete(host_core, alice, server_id, "alice1"))
    assert servers.list_for(host_core, alice) == []
    assert booted.nsenter("ls", "/etc/left4me/instances").split() == []
