"""A server's whole life through the domain layer on a host converged with site.yml.

create (ports allocated, RCON password generated) -> it answers A2S and RCON with that
password -> blueprint changed: "restart to apply" -> restart -> stop -> delete. Every step
is a playbooks/server.yml job run by ansible-runner, as the UI runs it.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from domain_helpers import with_settings

from left4me_ui import blueprints, jobs, live, observe, servers, status
from left4me_ui.authz import NotFound
from left4me_ui.core import Core
from left4me_ui.runner import load_inventory
from testhosts import host

pytestmark = pytest.mark.testhost


@pytest.fixture(scope="module")
def converged(booted_host: host.TestHost, demo_inventory: Path) -> tuple[host.TestHost, Path]:
    """The demo world's host, converged once for every test that needs one (tests/conftest.py)."""
    return booted_host, demo_inventory


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
        host_core, alice, "coop", ["demo-config"],
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
    # RCON answers the host's root only (the console's rcon module), never this machine.
    assert "Alice UI test" in live.run_console(host_core, alice, server_id, "hostname").output

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
    assert "alice1.env" not in booted.nsenter("ls", "/etc/left4me/instances").split()


def test_console_runs_status_and_the_log_shows_what_was_said(host_core, converged, alice, bob):
    booted, _ = converged
    blueprint = blueprints.create(
        host_core, alice, "coop", ["demo-config"],
        blueprints.BlueprintSettings(hostname="Alice console test", maxplayers=4))
    server_id, job_id = servers.create(host_core, alice, "alice2", booted.name, blueprint.id)
    _run(host_core, alice, job_id)
    try:
        answer = live.run_console(host_core, alice, server_id, "status")
        assert "hostname: Alice console test" in answer.output
        assert "map     : c1m1_hotel" in answer.output
        assert 0 < answer.seconds < answer.round_trip  # the exchange is part of the trip

        marker = f"left4me-console-test-{server_id}"
        live.run_console(host_core, alice, server_id, f"say {marker}")
        page = live.read_log(host_core, alice, server_id)
        assert any(f"Console: {marker}" in line for line in page.lines), page.lines[-20:]
        # Following from the cursor returns only what came after it.
        live.run_console(host_core, alice, server_id, f"say {marker}-2")
        following = live.read_log(host_core, alice, server_id, cursor=page.cursor)
        assert any(f"Console: {marker}-2" in line for line in following.lines)
        assert not any(line.endswith(f"Console: {marker}") for line in following.lines)

        history = live.console_history(host_core, alice, server_id)
        assert [(e.user_name, e.command, e.outcome) for e in history][-1] == (
            "alice", "status", "ok")
        with pytest.raises(NotFound):
            live.run_console(host_core, bob, server_id, "status")
    finally:
        _run(host_core, alice, servers.delete(host_core, alice, server_id, "alice2"))


def test_the_poll_sees_a_crash_loop_the_ui_did_not_cause(host_core, converged, alice):
    booted, _ = converged
    blueprint = blueprints.create(
        host_core, alice, "crashy", ["demo-config"],
        blueprints.BlueprintSettings(hostname="Alice crash test", maxplayers=4))
    server_id, job_id = servers.create(host_core, alice, "alice3", booted.name, blueprint.id)
    _run(host_core, alice, job_id)
    unit = "left4me-server@alice3.service"
    try:
        observe.poll_host(host_core, booted.name)
        seen = observe.latest(host_core, alice)[server_id]
        assert (seen.state, seen.running, seen.max_players) == ("running", True, 4)
        # kill -9 until systemd's crash-loop cap (5 starts in 60 s) gives up.
        for _attempt in range(12):
            active = booted.nsenter("systemctl", "show", "-P", "ActiveState", unit).strip()
            if active == "failed":
                break
            if active == "active":
                booted.nsenter("systemctl", "kill", "--signal=KILL", unit)
            time.sleep(1.5)
        changed = observe.poll_host(host_core, booted.name)
        seen = observe.latest(host_core, alice)[server_id]
        assert seen.state == "crash_loop" and not seen.running, seen
        assert seen.reason.startswith("crash loop: gave up after 5 starts"), seen.reason
        assert [(c.before, c.after) for c in changed] == [("running", "crash_loop")]
    finally:
        _run(host_core, alice, servers.delete(host_core, alice, server_id, "alice3"))
