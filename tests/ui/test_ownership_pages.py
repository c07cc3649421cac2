"""The server page's live status (systemd beside A2S), the inventory's servers shown
read-only, and the Hosts page's reconcile action, driven with AppTest."""

from __future__ import annotations

import time

import pytest

from left4me_ui import blueprints, health, jobs, observe, reconcile, runner, servers, status
from left4me_ui.inventory import Inventory
from left4me_ui.status import A2SAnswer, SystemdState
from tests.ui.conftest import PAGE_INVENTORY


def texts(app) -> str:
    return "\n".join(t.value for t in app.text)


@pytest.fixture
def deployed(core, alice):
    """alice's server, created and applied once (its live status is then read)."""
    blueprint = blueprints.create(core, alice.actor, "coop", ["demo-config"],
                                  blueprints.BlueprintSettings(hostname="My coop"))
    server_id, _ = servers.create(core, alice.actor, "coop2", "alpha", blueprint.id)
    with core.db.connect() as conn:
        conn.execute("UPDATE servers SET applied_revision = 1 WHERE id = ?", (server_id,))
    return server_id


def _live(monkeypatch, unit: SystemdState | None, answer: A2SAnswer | None) -> None:
    def states(core, actor, host, timeout=20):
        if unit is None:
            raise RuntimeError(f"could not read systemd state on {host}: unreachable")
        return {s.id: unit for s in servers.list_for(core, actor) if s.host == host}

    monkeypatch.setattr(status, "systemd_states", states)
    monkeypatch.setattr(status, "a2s_info", lambda core, actor, server_id, timeout=1.0: answer)


def test_a_failed_server_shows_systemds_state_and_is_never_called_running(
        core, alice, deployed, monkeypatch):
    _live(monkeypatch, SystemdState("failed", "failed", "oom-kill"), None)
    app = alice.app("servers")
    assert not app.exception
    shown = texts(app)
    assert "Status: failed (oom-kill) (wanted: started)" in shown
    assert "systemd: failed (failed), last result oom-kill" in shown
    assert "A2S: no answer on alpha:" in shown
    assert "running" not in shown
    assert [r["wanted"] for r in app.dataframe[0].value.to_dict("records")] == ["started"]


def test_a_server_systemd_gave_up_on_says_why_in_the_lists_words(
        core, alice, deployed, monkeypatch):
    _live(monkeypatch, SystemdState("failed", "failed", "signal"), None)
    why = "crash loop: gave up after 5 starts within 60 s (killed by SIGKILL)"
    observe.record(core, "alpha", [
        {"name": "coop2", "state": "crash_loop", "running": False, "reason": why}])
    app = alice.app("servers")
    shown = texts(app)
    assert "Status: failed (signal) (wanted: started)" in shown
    assert f"Why, as the last poll saw it: {why}" in shown
    assert app.dataframe[0].value.to_dict("records")[0]["state"] == why  # one wording


def test_a_running_server_shows_both_answers(core, alice, deployed, monkeypatch):
    _live(monkeypatch, SystemdState("active", "running", "success"),
          A2SAnswer("My coop", "c1m1_hotel", 1, 8))
    shown = texts(alice.app("servers"))
    assert "Status: running (wanted: started)" in shown
    assert "systemd: active (running)" in shown
    assert "A2S: answering as My coop, map c1m1_hotel, players 1/8" in shown


def test_a_server_answering_while_systemd_cannot_be_asked_is_not_running(
        core, alice, deployed, monkeypatch):
    _live(monkeypatch, None, A2SAnswer("My coop", "c1m1_hotel", 0, 8))
    shown = texts(alice.app("servers"))
    assert "Status: state unknown (systemd could not be asked); it answers A2S" in shown
    assert "systemd: could not be asked: could not read systemd state on alpha" in shown


def _with_declared(core) -> None:
    hostvars = {"alpha": {**PAGE_INVENTORY.hostvars["alpha"],
                          "game_instances_list": [{"name": "coop1", "port": 27015}]}}
    core._inventory = None
    core.inventory_loader = lambda _path: Inventory(hostvars)


def test_an_admin_sees_the_inventorys_servers_read_only(core, admin, alice, deployed,
                                                         monkeypatch):
    _live(monkeypatch, SystemdState("active", "running", "success"), None)
    _with_declared(core)
    app = admin.app("servers")
    assert not app.exception
    declared = app.dataframe[1].value.to_dict("records")
    assert declared == [{"host": "alpha", "name": "coop1", "ports": "27015, 27016",
                         "connect": "connect 192.0.2.10:27015",
                         "managed by": "inventory (site.yml)"}]
    assert "read-only" in app.expander[0].label
    # nothing on the page acts on it: the server selector offers only the UI's servers
    assert all("coop1" not in str(o) for sb in app.selectbox for o in sb.options)
    # a user sees only their own servers
    assert not any("inventory runs" in e.label for e in alice.app("servers").expander)


def test_an_admin_reconciles_a_host_from_the_hosts_page(core, admin, deployed, monkeypatch):
    monkeypatch.setattr(runner, "check_reachability", lambda _inventory: [])
    app = admin.app("hosts")
    assert not app.exception
    assert app.selectbox(key="reconcile_target").value == "alpha"
    app.button(key="reconcile_host").click().run()
    assert not app.exception
    [job] = jobs.history(core, admin.actor)[:1]
    assert (job.kind, job.host) == (reconcile.KIND_RECONCILE, "alpha")
    assert [s["name"] for s in job.extravars["left4me_servers"]] == ["coop2"]
    assert any(f"Job {job.id} (host reconcile): queued" in p.text for p in app.get("progress"))


def test_a_hung_server_shows_its_health_and_the_owner_chooses_restart(
        core, alice, deployed, monkeypatch):
    """Active in systemd, dead to players: the page says down since when, for how long,
    and what was done; the owner's choice of action is saved."""
    _live(monkeypatch, SystemdState("active", "running", "success"), None)
    for job in jobs.history(core, alice.actor):  # its create job ran
        with core.db.connect() as conn:
            conn.execute("UPDATE jobs SET state = 'succeeded' WHERE id = ?", (job.id,))
    seen = {"name": "coop2", "state": "running", "running": True, "invocation": "run1",
            "a2s": {"name": "My coop", "map": "c1m1_hotel", "players": 0, "max_players": 8}}
    moments = iter(time.time() - 205 + at for at in (0, 130, 145, 160, 175, 190, 205))
    monkeypatch.setattr(core, "clock", lambda: next(moments))
    health.record(core, "alpha", [seen])
    health.record(core, "alpha", [seen])
    for _ in range(5):
        health.record(core, "alpha", [{**seen, "a2s": None}])
    monkeypatch.setattr(core, "clock", time.time)
    app = alice.app("servers")
    assert not app.exception
    [line] = [t for t in texts(app).splitlines() if t.startswith("Health: ")]
    assert line.startswith("Health: down since ")
    assert "A2S silent for 60 s while the unit is active" in line
    assert "no action (the server's health action is none)" in line
    app.radio(key=f"health_action_{deployed}").set_value("restart")
    app.button(key="health_action_save").click().run()
    assert not app.exception
    with core.db.connect() as conn:
        assert conn.execute("SELECT health_action FROM servers WHERE id = ?",
                            (deployed,)).fetchone()[0] == "restart"
