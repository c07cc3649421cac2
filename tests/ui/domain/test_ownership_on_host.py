"""Who owns what on a real host converged with site.yml: both directions.

The UI's servers are recorded as the UI's (manager ui) and site.yml, pruning on, never
removes or changes one; the inventory's servers are recorded as the inventory's, and the
UI refuses to act on one: the domain before any job, and srcds_instance on the host should a
job get through anyway (an old UI, a hand-made row). Among UI servers, each is claimed by
the UI (and server) that made it: a user of another UI naming a server the same takes
nothing over.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from domain_helpers import make_user, ui_id, with_settings

from left4me_ui import blueprints, boot, jobs, servers, status
from left4me_ui.core import Core
from left4me_ui.runner import load_inventory
from testhosts import host
from tests.conftest import run_site

pytestmark = pytest.mark.testhost

UNIT_PROPS = "--property=ActiveState,SubState,InvocationID"


@pytest.fixture
def host_core(core: Core, demo_inventory: Path) -> Core:
    with_settings(core, inventory=demo_inventory)
    core.inventory_loader = load_inventory
    return core


def _unit(booted: host.TestHost, name: str) -> str:
    return booted.nsenter("systemctl", "show", UNIT_PROPS, f"left4me-server@{name}.service")


def _files(booted: host.TestHost, name: str) -> str:
    return booted.nsenter("sh", "-c", f"cat /etc/left4me/instances/{name}.env"
                          f" /etc/left4me/instances/{name}.manager")


def _run(core: Core, actor, job_id: int) -> jobs.Job:
    job = jobs.run_next(core)
    assert job.id == job_id
    return job


def test_a_ui_server_survives_site_yml_with_pruning_on(host_core, booted_host, demo_inventory,
                                                       alice):
    blueprint = blueprints.create(host_core, alice, "keep", ["demo-config"],
                                  blueprints.BlueprintSettings(hostname="Alice keeps this"))
    server_id, job_id = servers.create(host_core, alice, "keepme", booted_host.name,
                                       blueprint.id)
    assert _run(host_core, alice, job_id).state == jobs.SUCCEEDED
    assert _files(booted_host, "keepme").splitlines()[-1] == "ui"
    unit, files = _unit(booted_host, "keepme"), _files(booted_host, "keepme")
    assert "SubState=running" in unit

    # Pruning is the default now; said out loud so the test keeps meaning it.
    run = run_site(demo_inventory, "-e", "game_instances_prune=true")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    recap = re.search(rf"^{re.escape(booted_host.name)}\s+:(.*)$", run.stdout, re.MULTILINE)
    assert recap and re.search(r"\bchanged=0\b", recap.group(1)), run.stdout[-4000:]
    assert _unit(booted_host, "keepme") == unit  # same run of the unit: never restarted
    assert _files(booted_host, "keepme") == files
    answer = status.a2s_info(host_core, alice, server_id, timeout=3)
    assert answer is not None and answer.server_name == "Alice keeps this"

    assert _run(host_core, alice, servers.delete(host_core, alice, server_id, "keepme")).state \
        == jobs.SUCCEEDED


def test_the_ui_refuses_to_act_on_an_inventory_server(host_core, booted_host, admin):
    assert _files(booted_host, "coop1").splitlines()[-1] == "inventory"
    unit, files = _unit(booted_host, "coop1"), _files(booted_host, "coop1")
    # A servers row naming the inventory's coop1 (a crafted row, or one from an old UI).
    blueprint = blueprints.create(host_core, admin, "stale", [], blueprints.BlueprintSettings())
    with host_core.db.connect() as conn:
        server_id = int(conn.execute(
            "INSERT INTO servers (owner_id, host, name, port, client_port, blueprint_id,"
            " rcon_encrypted, created_at) VALUES (?, ?, 'coop1', 27015, 27016, ?, ?, ?)",
            (admin.user_id, booted_host.name, blueprint.id, host_core.crypto.encrypt("x"),
             host_core.clock())).lastrowid)
    for action in (servers.stop, servers.restart):
        with pytest.raises(servers.InventoryManaged, match="declared by the inventory"):
            action(host_core, admin, server_id)
    with pytest.raises(servers.InventoryManaged):
        servers.delete(host_core, admin, server_id, "coop1")
    assert jobs.history(host_core, admin) == []

    # Past the domain, the host itself refuses: server.yml says manager ui.
    with host_core.db.connect() as conn:
        job_id = jobs.enqueue(conn, host_core, admin, kind=servers.KIND_DELETE,
                              host=booted_host.name, target=f"{booted_host.name}/coop1",
                              playbook="server.yml", server_id=server_id,
                              extravars={"left4me_server_name": "coop1",
                                         "left4me_server_state": "absent"})
    job = _run(host_core, admin, job_id)
    assert job.state == jobs.FAILED
    assert "instance 'coop1' is managed by inventory" in job.error, job.error
    assert _unit(booted_host, "coop1") == unit and _files(booted_host, "coop1") == files


def test_a_create_naming_another_uis_server_is_refused_and_changes_nothing(
        host_core, booted_host, alice, tmp_path):
    # Another UI (its own database, so its own id; or this UI before it lost its database)
    # made "theirs1" on the host.
    other = boot.open_core(replace(host_core.settings, state_dir=tmp_path / "other-ui"),
                           clock=host_core.clock, inventory_loader=load_inventory)
    mallory = make_user(other, "mallory")
    theirs = blueprints.create(other, mallory, "theirs", [],
                               blueprints.BlueprintSettings(hostname="Their server"))
    their_id, job_id = servers.create(other, mallory, "theirs1", booted_host.name, theirs.id)
    assert _run(other, mallory, job_id).state == jobs.SUCCEEDED
    owner = f"ui:{ui_id(other)}/{their_id}"
    assert f"claim {owner}" in _files(booted_host, "theirs1")
    unit, files = _unit(booted_host, "theirs1"), _files(booted_host, "theirs1")
    mine = blueprints.create(host_core, alice, "mine", ["demo-config"],
                             blueprints.BlueprintSettings(hostname="Alice took it"))

    def try_to_take(expected: str) -> None:
        server_id, job_id = servers.create(host_core, alice, "theirs1", booted_host.name,
                                           mine.id)
        job = _run(host_core, alice, job_id)
        assert job.state == jobs.FAILED
        assert expected in job.error, job.error
        assert servers.list_for(host_core, alice) == []  # no server of that name is kept
        assert _unit(booted_host, "theirs1") == unit  # never restarted
        assert _files(booted_host, "theirs1") == files  # nor reconfigured
        answer = status.a2s_info(other, mallory, their_id, timeout=3)
        assert answer is not None and answer.server_name == "Their server"

    try_to_take(f"instance 'theirs1' is owned by {owner}")
    # The same instance recorded as plain "ui" (made before owners were recorded): a create
    # still never takes it.
    booted_host.nsenter("sh", "-c", "printf 'ui\\n' > /etc/left4me/instances/theirs1.manager")
    files = _files(booted_host, "theirs1")
    try_to_take("instance 'theirs1' on this host has no owner recorded")
    # Its own UI, which ran it there, claims it again.
    assert _run(other, mallory, servers.restart(other, mallory, their_id)).state \
        == jobs.SUCCEEDED
    assert f"claim {owner}" in _files(booted_host, "theirs1")
    assert _run(other, mallory, servers.delete(other, mallory, their_id, "theirs1")).state \
        == jobs.SUCCEEDED
