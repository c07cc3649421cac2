"""Who owns what on a host, reconciling a host, and the live status phrase (no host here).

The inventory's servers (game_instances_list) are shown to admins read-only and refused to
every action; a reconcile job carries every UI server of a host, secrets only in its run's
extravars; "running" is said only when systemd runs the unit and the server answers.
"""

from __future__ import annotations

import json

import domain_helpers
import pytest

from left4me_ui import blueprints, jobs, reconcile, servers, status
from left4me_ui.authz import Forbidden, NotFound
from left4me_ui.db import Database
from left4me_ui.status import A2SAnswer, SystemdState

COOP = blueprints.BlueprintSettings(hostname="Alice coop")


def _smuggle_row(core, owner, name, host="alpha", port=27100):
    """A servers row naming an inventory server (a crafted or stale database row)."""
    blueprint = blueprints.create(core, owner, f"bp-{name}", [], COOP)
    with core.db.connect() as conn:
        cursor = conn.execute(
            "INSERT INTO servers (owner_id, host, name, port, client_port, blueprint_id,"
            " rcon_encrypted, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (owner.user_id, host, name, port, port + 1, blueprint.id,
             core.crypto.encrypt("x"), core.clock()))
        return int(cursor.lastrowid)


ACTIONS = {
    "start": lambda c, a, i: servers.start(c, a, i),
    "stop": lambda c, a, i: servers.stop(c, a, i),
    "restart": lambda c, a, i: servers.restart(c, a, i),
    "delete": lambda c, a, i: servers.delete(c, a, i, "coop1"),
}


@pytest.mark.parametrize("action", list(ACTIONS))
def test_the_ui_refuses_every_action_on_an_inventory_server(core, admin, action):
    server_id = _smuggle_row(core, admin, "coop1")  # alpha's game_instances_list has coop1
    with pytest.raises(servers.InventoryManaged) as refused:
        ACTIONS[action](core, admin, server_id)
    assert "coop1 on alpha is declared by the inventory" in str(refused.value)
    assert "site.yml" in str(refused.value)
    assert isinstance(refused.value, Forbidden)  # pages show it like any refusal
    assert jobs.history(core, admin) == []  # nothing queued
    assert not servers.get(core, admin, server_id).deleting


def test_admins_see_the_inventorys_servers_read_only_users_do_not(core, admin, alice):
    shown = servers.declared_for(core, admin)
    assert [(d.host, d.name, d.ports) for d in shown] == [  # coop1's client port: port + 1
        ("alpha", "coop1", (27015, 27016)), ("alpha", "versus1", (27025, 27026))]
    assert shown[0].connect_line == "connect 192.0.2.10:27015"
    assert servers.declared_for(core, alice) == []


# --- which UI, and which of its servers, owns an instance -----------------------------------


def _server(core, owner, name="alice1", host="alpha"):
    blueprint = blueprints.create(core, owner, f"bp-{name}", [], COOP)
    return servers.create(core, owner, name, host, blueprint.id)


def test_every_server_job_claims_the_instance_for_this_ui_and_server(core, alice):
    server_id, job_id = _server(core, alice)
    claim = jobs.get(core, alice, job_id).extravars["left4me_server_claim"]
    ui_id = domain_helpers.ui_id(core)
    assert claim == f"ui:{ui_id}/{server_id}" and len(ui_id) >= 16
    assert domain_helpers.ui_id(core) == ui_id  # made once, kept
    # A create never takes an instance the host recorded without a claim...
    assert jobs.get(core, alice, job_id).extravars["left4me_server_adopt"] is False
    domain_helpers.finish_job(core, job_id)
    # ...a server this UI ran there may (a ui instance from before claims).
    stop = jobs.get(core, alice, servers.stop(core, alice, server_id)).extravars
    assert (stop["left4me_server_claim"], stop["left4me_server_adopt"]) == (claim, True)


def test_a_new_database_is_a_new_ui(tmp_path, core):
    """After a database loss the UI is another owner to the hosts: its new rows (ids from 1
    again) cannot match a claim the lost database made."""
    before = domain_helpers.ui_id(core)
    fresh = Database(tmp_path / "after-the-loss.db")
    fresh.create()
    with fresh.connect() as conn:
        assert servers.ui_instance_id(conn) != before


@pytest.mark.parametrize("refusal", [
    "instance 'alice1' is owned by ui:0123456789abcdef/4 (recorded in /etc/left4me/instances/"
    "alice1.manager), not by ui:x/1",
    "instance 'alice1' on this host has no owner recorded (made before owners were recorded",
])
def test_a_create_the_host_refuses_as_not_ours_keeps_no_server(core, alice, admin, refusal):
    server_id, job_id = _server(core, alice)
    job = jobs.claim(core)
    with core.db.connect() as conn:
        jobs._finish(conn, core, job, jobs.FAILED, 2, refusal)
    assert servers.list_for(core, alice) == []  # the name was never ours: nothing kept
    with pytest.raises(NotFound):
        servers.get(core, alice, server_id)
    assert jobs.get(core, alice, job_id).error == refusal  # the job says whose it is
    # ...and a reconcile does not try to take it either.
    assert jobs.get(core, admin, reconcile.reconcile_host(core, admin, "alpha")) \
        .extravars["left4me_servers"] == []


def test_a_create_that_failed_otherwise_keeps_its_server(core, alice):
    server_id, job_id = _server(core, alice)
    domain_helpers.finish_job(core, job_id, jobs.FAILED)
    assert servers.get(core, alice, server_id).name == "alice1"


# --- reconcile a host -----------------------------------------------------------------------


@pytest.fixture
def two_servers(core, alice, bob):
    coop = blueprints.create(core, alice, "coop", ["demo-config"], COOP)
    versus = blueprints.create(
        core, bob, "versus", [],
        blueprints.BlueprintSettings(hostname="Bob versus", map="c5m1_waterfront"))
    a, _ = servers.create(core, alice, "alice1", "alpha", coop.id)
    b, _ = servers.create(core, bob, "bob1", "alpha", versus.id)
    servers.create(core, bob, "elsewhere", "beta", versus.id)
    with core.db.connect() as conn:
        conn.execute("UPDATE servers SET desired_state = 'stopped' WHERE id = ?", (b,))
    return a, b


def test_reconcile_queues_one_job_with_every_ui_server_of_the_host(core, admin, two_servers):
    job_id = reconcile.reconcile_host(core, admin, "alpha")
    job = jobs.get(core, admin, job_id)
    assert (job.kind, job.host, job.playbook) == ("host reconcile", "alpha", "reconcile.yml")
    wanted = job.extravars["left4me_servers"]
    assert [s["name"] for s in wanted] == ["alice1", "bob1"]  # not beta's, not the inventory's
    assert wanted[0]["overlays"] == ["demo-config"] and wanted[0]["hostname"] == "Alice coop"
    assert wanted[1]["map"] == "c5m1_waterfront" and "state" not in wanted[1]
    # Each server claims its instance; never deployed yet, neither may take an unclaimed one.
    ui_id = domain_helpers.ui_id(core)
    assert [(s["claim"], s["adopt"]) for s in wanted] == [
        (f"ui:{ui_id}/{two_servers[0]}", False), (f"ui:{ui_id}/{two_servers[1]}", False)]
    assert job.extravars["left4me_servers_stopped"] == ["bob1"]
    # The passwords are only in what the run gets, never in the stored job.
    secret = core.wiring.secret_providers[job.secrets_from](core, job)["left4me_servers_rcon"]
    assert set(secret) == {"alice1", "bob1"}
    for name, server_id in zip(("alice1", "bob1"), two_servers, strict=True):
        password = servers.rcon_password(core, admin, server_id)
        assert secret[name] == {"rcon_password": password}
        with core.db.connect() as conn:
            stored = json.dumps([dict(r) for r in conn.execute("SELECT * FROM jobs")])
        assert password not in stored


def test_only_an_admin_may_reconcile(core, alice, two_servers):
    with pytest.raises(Forbidden):
        reconcile.reconcile_host(core, alice, "alpha")


def test_a_succeeded_reconcile_clears_restart_to_apply(core, admin, alice, two_servers):
    alice_id, _ = two_servers
    with core.db.connect() as conn:  # it ran once with revision 1, then the blueprint changed
        conn.execute("UPDATE servers SET applied_revision = 1 WHERE id = ?", (alice_id,))
    blueprint_id = servers.get(core, alice, alice_id).blueprint_id
    blueprints.update(core, alice, blueprint_id, config=blueprints.BlueprintSettings(
        hostname="Alice coop", map="c2m1_highway"))
    assert servers.get(core, alice, alice_id).needs_restart
    job = jobs.get(core, admin, reconcile.reconcile_host(core, admin, "alpha"))
    with core.db.connect() as conn:
        jobs._finish(conn, core, job, jobs.SUCCEEDED, 0, None)
    assert not servers.get(core, alice, alice_id).needs_restart


# --- the live status phrase -------------------------------------------------------------------

ANSWER = A2SAnswer("Alice coop", "c1m1_hotel", 0, 8)


@pytest.mark.parametrize(("unit", "answer", "said"), [
    (SystemdState("active", "running", "success"), ANSWER, "running"),
    (SystemdState("active", "running", "success"), None, "started, not answering A2S (yet)"),
    (SystemdState("inactive", "dead", "success"), None, "stopped"),
    (SystemdState("failed", "failed", "oom-kill"), None, "failed (oom-kill)"),
    (SystemdState("activating", "auto-restart", "exit-code"), None,
     "restarting after a failure (exit-code)"),
    (SystemdState("activating", "start-pre", ""), None, "starting"),
    (SystemdState("unknown", "unknown", ""), None, "state unknown (systemd could not be asked)"),
    (None, ANSWER, "state unknown (systemd could not be asked); it answers A2S"),
])
def test_running_is_said_only_when_systemd_runs_it_and_it_answers(unit, answer, said):
    assert status.summarize(unit, answer) == said
    if said != "running":
        assert "running" not in said.split()
