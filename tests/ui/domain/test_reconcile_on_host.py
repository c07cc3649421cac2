"""Nothing is lost on a rebuilt host: the UI's database brings its servers back.

A host of this test's own (one extra host) is converged with site.yml and gets three UI
servers (two started, one stopped); then it is destroyed and a fresh one boots at the same
name and address, site.yml converges it (the inventory's servers only), and one
"reconcile host" job re-creates the UI's servers: they answer A2S with their names again,
their stored RCON passwords work, and the stopped one is configured but stays stopped.
"""

from __future__ import annotations

from pathlib import Path

import a2s
import pytest
from domain_helpers import ui_id, with_settings

from left4me_ui import blueprints, jobs, live, reconcile, servers
from left4me_ui.core import Core
from left4me_ui.runner import load_inventory
from testhosts import host
from testhosts.pytest_report import report_on
from tests.conftest import _need_root_and_nspawn, run_site, write_demo_inventory

pytestmark = pytest.mark.testhost


@pytest.fixture
def own_host():
    """A host of this test's own: it gets destroyed and booted again in the test."""
    _need_root_and_nspawn()
    booted = host.create(host.unique_name("rc"))
    report_on(booted)
    yield booted
    host.destroy(booted.name)


def _converge(inventory: Path) -> None:
    run = run_site(inventory)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]


def _run(core: Core, actor, job_id: int) -> jobs.Job:
    job = jobs.run_next(core)
    assert job.id == job_id
    log = "\n".join(e.text for e in jobs.events(core, actor, job_id))
    assert job.state == jobs.SUCCEEDED, f"{job.error}\n{log[-3000:]}"
    return job


def _name_answering(address: str, port: int) -> str | None:
    try:
        return a2s.info((address, port), timeout=3, encoding="utf-8").server_name
    except (OSError, a2s.BrokenMessageError):
        return None


def test_reconcile_brings_every_ui_server_back_on_a_rebuilt_host(
        core: Core, admin, alice, own_host, tmp_path, monkeypatch):
    # ssh connection sharing is keyed by address and user: each life of the host gets its own
    # control sockets, or the second life's first ssh would ride the first life's dead master.
    monkeypatch.setenv("ANSIBLE_SSH_CONTROL_PATH_DIR", str(tmp_path / "cp-first-life"))
    (tmp_path / "inventory").mkdir()
    inventory = write_demo_inventory(own_host, tmp_path / "inventory")
    _converge(inventory)
    with_settings(core, inventory=inventory)
    core.inventory_loader = load_inventory

    made = {}
    for name, hostname, game_map in (("alpha1", "Alice alpha", "c1m1_hotel"),
                                     ("beta1", "Alice beta", "c2m1_highway"),
                                     ("quiet1", "Alice quiet", "c1m1_hotel")):
        blueprint = blueprints.create(core, alice, f"bp {name}", ["demo-config"],
                                      blueprints.BlueprintSettings(hostname=hostname,
                                                                   map=game_map, maxplayers=4))
        server_id, job_id = servers.create(core, alice, name, own_host.name, blueprint.id)
        _run(core, alice, job_id)
        made[name] = servers.get(core, alice, server_id)
    _run(core, alice, servers.stop(core, alice, made["quiet1"].id))
    assert _name_answering(own_host.address, made["alpha1"].port) == "Alice alpha"

    # The host is wiped: a fresh one boots at the same name and address; site.yml converges it.
    host.destroy(own_host.name)
    rebuilt = host.create(own_host.name, index=own_host.index)
    assert (rebuilt.name, rebuilt.address) == (own_host.name, own_host.address)
    monkeypatch.setenv("ANSIBLE_SSH_CONTROL_PATH_DIR", str(tmp_path / "cp-second-life"))
    _converge(inventory)
    assert _name_answering(rebuilt.address, made["alpha1"].port) is None  # lost with the host

    job = _run(core, admin, reconcile.reconcile_host(core, admin, rebuilt.name))
    assert job.kind == reconcile.KIND_RECONCILE
    for name, hostname in (("alpha1", "Alice alpha"), ("beta1", "Alice beta")):
        assert _name_answering(rebuilt.address, made[name].port) == hostname
    # The stored RCON password reached the host (through the job's 0600 extravars) and works.
    password = servers.rcon_password(core, alice, made["beta1"].id)
    cfg = rebuilt.nsenter("cat", "/var/lib/left4me/overlays/.instance-beta1/left4dead2/cfg/"
                          "left4me/instance.cfg")
    assert f'rcon_password "{password}"' in cfg
    # RCON answers the host's root only: through the console's rcon module. A generous
    # deadline: one run on a machine at load ~36 saw the login wait past 10 s.
    answer = live.run_console(core, alice, made["beta1"].id, "status", deadline=30)
    assert "c2m1_highway" in answer.output
    quiet = rebuilt.nsenter("systemctl", "is-active", "left4me-server@quiet1.service",
                            check=False).strip()
    assert quiet == "inactive"
    assert "quiet1.env" in rebuilt.nsenter("ls", "/etc/left4me/instances").split()
    for name in made:
        record = rebuilt.nsenter("cat", f"/etc/left4me/instances/{name}.manager")
        assert record.splitlines()[-1] == "ui"
        assert f"claim ui:{ui_id(core)}/{made[name].id}" in record.splitlines()  # its owner

    # Reconciling a host that lost nothing changes nothing (and keeps every server running).
    again = _run(core, admin, reconcile.reconcile_host(core, admin, rebuilt.name))
    log = "\n".join(e.text for e in jobs.events(core, admin, again.id))
    assert "changed:" not in log, log[-3000:]
