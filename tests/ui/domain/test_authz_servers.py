"""Who may do what, servers and blueprints: ports, names, links, quotas, hosts."""

from __future__ import annotations

import pytest
from domain_helpers import make_user, ui_id

from left4me_ui import accounts, authz, blueprints, jobs, servers
from left4me_ui.authz import Actor, Forbidden, NotFound
from left4me_ui.validation import InstanceError

COOP = blueprints.BlueprintSettings(hostname="Alice coop", cvars={"sv_gametypes": "coop"})


@pytest.fixture
def alice_server(core, alice):
    blueprint = blueprints.create(core, alice, "coop", ["demo-config"], COOP)
    server_id, job_id = servers.create(core, alice, "alice1", "alpha", blueprint.id)
    return blueprint.id, server_id, job_id


ACTIONS = {
    "view server": lambda c, a, ids: servers.get(c, a, ids[1]),
    "start": lambda c, a, ids: servers.start(c, a, ids[1]),
    "stop": lambda c, a, ids: servers.stop(c, a, ids[1]),
    "restart": lambda c, a, ids: servers.restart(c, a, ids[1]),
    "delete": lambda c, a, ids: servers.delete(c, a, ids[1], "alice1"),
    "read rcon password": lambda c, a, ids: servers.rcon_password(c, a, ids[1]),
    "view blueprint": lambda c, a, ids: blueprints.get(c, a, ids[0]),
    "edit blueprint": lambda c, a, ids: blueprints.update(c, a, ids[0], name="renamed"),
    "view job": lambda c, a, ids: jobs.get(c, a, ids[2]),
    "read job log": lambda c, a, ids: jobs.events(c, a, ids[2]),
    "cancel job": lambda c, a, ids: jobs.cancel(c, a, ids[2]),
    "server job history": lambda c, a, ids: jobs.history(c, a, server_id=ids[1]),
}


def _actor(kind: str, core, alice, bob, admin) -> Actor:
    if kind == "owner":
        return alice
    if kind == "admin":
        return admin
    if kind == "other user":
        return bob
    if kind == "other user claiming admin":
        return Actor(bob.user_id, "bob", "admin")
    if kind == "other user claiming the owner's id":
        return Actor(alice.user_id + 1000, "alice", "user")
    if kind == "disabled owner":
        accounts.set_disabled(core, admin, alice.user_id, True)
        return alice
    raise AssertionError(kind)


ALLOWED = {"owner": True, "admin": True, "other user": False,
           "other user claiming admin": False, "other user claiming the owner's id": False,
           "disabled owner": False}


@pytest.mark.parametrize("action", list(ACTIONS))
@pytest.mark.parametrize("who", list(ALLOWED))
def test_authorization_matrix(core, alice, bob, admin, alice_server, who, action):
    actor = _actor(who, core, alice, bob, admin)
    if ALLOWED[who]:
        ACTIONS[action](core, actor, alice_server)
    else:
        with pytest.raises((Forbidden, NotFound)):
            ACTIONS[action](core, actor, alice_server)
        server = servers.get(core, admin, alice_server[1])
        assert not server.deleting and server.name == "alice1"  # nothing changed


def test_lists_show_only_what_the_actor_owns(core, alice, bob, admin, alice_server):
    assert [s.name for s in servers.list_for(core, alice)] == ["alice1"]
    assert servers.list_for(core, bob) == []
    assert blueprints.list_for(core, bob) == []
    assert [s.name for s in servers.list_for(core, admin)] == ["alice1"]
    assert jobs.history(core, bob) == []
    assert len(jobs.history(core, alice)) == 1


def test_a_server_cannot_use_someone_elses_blueprint(core, alice, bob, alice_server):
    with pytest.raises(NotFound):
        servers.create(core, bob, "bob1", "alpha", alice_server[0])


def test_ports_avoid_the_inventorys_and_the_uis_servers_on_that_host_only(core, alice):
    blueprint = blueprints.create(core, alice, "coop", [], COOP)
    with_settings_quota(core, alice, 10)
    made = [servers.get(core, alice, servers.create(core, alice, f"s{i}", "alpha",
                                                    blueprint.id)[0]) for i in range(3)]
    # alpha declares coop1 on 27015 (its client port: 27016, srcds_instance's default) and
    # versus1 on 27025/27026 in game_instances_list.
    assert [(s.port, s.client_port) for s in made] == [(27017, 27018), (27019, 27020),
                                                     (27021, 27022)]
    on_beta = servers.get(core, alice, servers.create(core, alice, "s9", "beta",
                                                      blueprint.id)[0])
    assert (on_beta.port, on_beta.client_port) == (27015, 27016)
    assert made[0].connect_line == "connect 192.0.2.10:27017"


def test_allocation_skips_single_gaps_and_reports_a_full_range():
    assert servers.allocate_ports({27015, 27017, 27020}, (27015, 27030)) == (27018, 27019)
    with pytest.raises(servers.NoFreePort):
        servers.allocate_ports({27015, 27017}, (27015, 27018))


def with_settings_quota(core, admin_or_user, limit):
    with core.db.connect() as conn:
        conn.execute("UPDATE users SET max_servers = ? WHERE id = ?",
                     (limit, admin_or_user.user_id))


@pytest.mark.parametrize("name", ["Upper", "has space", "-dash-first", "x" * 65, ""])
def test_server_names_follow_the_modules_rule(core, alice, name):
    blueprint = blueprints.create(core, alice, "coop", [], COOP)
    with pytest.raises(InstanceError, match="invalid instance name"):
        servers.create(core, alice, name, "alpha", blueprint.id)
    assert servers.list_for(core, alice) == []


def test_a_name_the_inventory_uses_on_that_host_is_refused(core, alice):
    blueprint = blueprints.create(core, alice, "coop", [], COOP)
    with pytest.raises(InstanceError, match="exists on alpha"):
        servers.create(core, alice, "coop1", "alpha", blueprint.id)
    servers.create(core, alice, "coop1", "beta", blueprint.id)  # another host: fine


@pytest.mark.parametrize("settings, overlays, message", [
    (blueprints.BlueprintSettings(map="c1m1 hotel"), [], "is not a map name"),
    (blueprints.BlueprintSettings(tickrate=129), [], "tickrate must be between 10 and 128"),
    (blueprints.BlueprintSettings(maxplayers=0), [], "maxplayers must be between 1 and 64"),
    (blueprints.BlueprintSettings(hostname='say "hi"; quit'), [], "double quotes"),
    (blueprints.BlueprintSettings(cvars={"rcon_password": "x"}), [], "never on the command"),
    (blueprints.BlueprintSettings(cvars={"sv_tags": "a b"}), [], "one word"),
    (blueprints.BlueprintSettings(), ["../etc"], "is not a directory name"),
    (blueprints.BlueprintSettings(), [".instance-x"], "is not a directory name"),
])
def test_blueprint_settings_follow_the_modules_rules(core, alice, settings, overlays, message):
    with pytest.raises(InstanceError, match=message):
        blueprints.create(core, alice, "bad", overlays, settings)
    assert blueprints.list_for(core, alice) == []


def test_a_linked_blueprint_cannot_be_deleted(core, alice, alice_server):
    with pytest.raises(blueprints.InUse, match="alpha/alice1"):
        blueprints.delete(core, alice, alice_server[0])
    unused = blueprints.create(core, alice, "spare", [], COOP)
    blueprints.delete(core, alice, unused.id)
    assert [b.name for b in blueprints.list_for(core, alice)] == ["coop"]


def test_a_changed_blueprint_asks_a_running_server_to_restart(core, alice, alice_server):
    blueprint_id, server_id, job_id = alice_server
    _finish(core, job_id)  # the create job applied revision 1
    assert servers.get(core, alice, server_id).needs_restart is False
    blueprints.update(core, alice, blueprint_id,
                      config=blueprints.BlueprintSettings(map="c2m1_highway"))
    assert servers.get(core, alice, server_id).needs_restart is True
    restart_job = servers.restart(core, alice, server_id)
    settings = jobs.get(core, alice, restart_job).extravars["left4me_server_settings"]
    assert settings["map"] == "c2m1_highway"
    _finish(core, restart_job)
    assert servers.get(core, alice, server_id).needs_restart is False


def _finish(core, job_id):
    """Mark a job succeeded through the engine's own finishing step (no ansible here)."""
    job = jobs.claim(core)
    assert job.id == job_id
    with core.db.connect() as conn:
        jobs._finish(conn, core, job, jobs.SUCCEEDED, 0, None)


def test_quota_and_host_policy(core, admin, alice, bob):
    blueprint = blueprints.create(core, alice, "coop", [], COOP)
    with core.db.connect() as conn:
        authz.set_default_max_servers(conn, admin, 1)
        authz.set_user_hosts_policy(conn, admin, ["beta"])
        with pytest.raises(Forbidden):
            authz.set_default_max_servers(conn, alice, 10)
    assert servers.hosts_for(core, alice) == ["beta"]
    assert servers.hosts_for(core, admin) == ["alpha", "beta"]
    with pytest.raises(Forbidden, match="may not put servers on host 'alpha'"):
        servers.create(core, alice, "a1", "alpha", blueprint.id)
    servers.create(core, alice, "a1", "beta", blueprint.id)
    with pytest.raises(Forbidden, match="the most you may have is 1"):
        servers.create(core, alice, "a2", "beta", blueprint.id)
    accounts.set_max_servers(core, admin, alice.user_id, 2)
    servers.create(core, alice, "a2", "beta", blueprint.id)


def test_rcon_password_is_encrypted_at_rest(core, alice, alice_server):
    password = servers.rcon_password(core, alice, alice_server[1])
    assert len(password) >= 24
    with core.db.connect() as conn:
        dump = "\n".join(conn.iterdump())
    assert password not in dump
    assert password not in core.settings.db_path.read_bytes().decode("latin-1")


def test_delete_needs_the_name_and_the_row_goes_when_the_job_succeeds(core, alice,
                                                                     alice_server):
    _, server_id, create_job = alice_server
    _finish(core, create_job)
    with pytest.raises(InstanceError, match="to confirm"):
        servers.delete(core, alice, server_id, "wrong")
    delete_job = servers.delete(core, alice, server_id, "alice1")
    assert jobs.get(core, alice, delete_job).extravars == {
        "left4me_server_name": "alice1", "left4me_server_state": "absent",
        "left4me_server_claim": f"ui:{ui_id(core)}/{server_id}", "left4me_server_adopt": True}
    assert jobs.get(core, alice, delete_job).secrets_from is None
    _finish(core, delete_job)
    with pytest.raises(NotFound):
        servers.get(core, alice, server_id)


def test_every_change_leaves_an_audit_row(core, alice, alice_server):
    from left4me_ui import audit
    with core.db.connect() as conn:
        rows = [(e.actor, e.action, e.target, e.outcome) for e in audit.entries(conn)]
    assert ("alice", "create server", "alpha/alice1", "ok") in rows
    assert ("alice", "server create", "alpha/alice1", "queued") in rows
    assert ("alice", "create blueprint", "blueprint coop", "ok") in rows


def test_make_user_helper_gives_distinct_ids(core):
    assert make_user(core, "dave").user_id != make_user(core, "erin").user_id
