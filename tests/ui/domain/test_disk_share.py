"""Each user's share of a host's disk (LEFT4ME_UI_USER_DISK_MAX): the caps of everything a
user owns add up to at most the share; a create past it is refused saying the use, the
share and what to remove, with nothing stored or queued; other users and admins are not
held by it; deleting frees it; a Workshop build asks the host for no more than is left."""

from __future__ import annotations

import pytest
from domain_helpers import FAKE_INVENTORY, finish_job, with_settings

from left4me_ui import authz, blueprints, disk_share, jobs, overlays, reconcile, servers
from left4me_ui import settings as settings_module
from left4me_ui.authz import NotFound
from left4me_ui.core import Core
from left4me_ui.inventory import Inventory
from left4me_ui.overlays.kinds import script as overlay_script
from left4me_ui.overlays.kinds import workshop

GIB = 1 << 30


@pytest.fixture
def core_inventory() -> Inventory:
    # beta's operator gives each server 5 GiB of writes (role game_instances' limits).
    return Inventory({**FAKE_INVENTORY.hostvars, "beta": {
        "ansible_host": "192.0.2.11", "game_instances_limits": {"upper_dir_max": "5G"}}})


@pytest.fixture(autouse=True)
def many_servers(core, admin) -> None:
    # The share, not the server quota (3 by default), is what these tests meet.
    with core.db.connect() as conn:
        authz.set_default_max_servers(conn, admin, 10)


def job_count(core: Core) -> int:
    with core.db.connect() as conn:
        return conn.execute("SELECT count(*) FROM jobs").fetchone()[0]


def make_server(core: Core, actor, name: str, host: str = "alpha") -> int:
    """A server whose create job has run, so later jobs on the host are next in line."""
    mine = [b for b in blueprints.list_for(core, actor) if b.owner_id == actor.user_id]
    blueprint = mine[0] if mine else blueprints.create(
        core, actor, "coop", [], blueprints.BlueprintSettings(hostname=f"{actor.name}'s"))
    server_id, job_id = servers.create(core, actor, name, host, blueprint.id)
    finish_job(core, job_id)
    return server_id


def test_a_user_at_her_share_is_refused_a_new_server_told_her_use_and_what_to_remove(
        core, alice):
    with_settings(core, user_disk_max=6 * GIB)
    for name in ("s1", "s2", "s3"):
        make_server(core, alice, name)  # 2 GiB of writes each: 6 GiB, the whole share
    queued = job_count(core)
    with pytest.raises(disk_share.OverShare) as refused:
        make_server(core, alice, "s4")
    message = str(refused.value)
    assert "server alpha/s4 may take 2.0 GiB" in message
    assert "past your 6.0 GiB share (you use 6.0 GiB:" in message
    assert "server alpha/s1 (2.0 GiB), server alpha/s2 (2.0 GiB)" in message
    assert "delete a server or an overlay you no longer need" in message
    assert "LEFT4ME_UI_USER_DISK_MAX" in message
    assert [s.name for s in servers.list_for(core, alice)] == ["s1", "s2", "s3"]
    assert job_count(core) == queued  # nothing queued


def test_a_server_counts_the_writes_cap_of_its_host(core, alice):
    with_settings(core, user_disk_max=6 * GIB)
    make_server(core, alice, "big", host="beta")  # 5 GiB there
    with pytest.raises(disk_share.OverShare, match=r"server alpha/s1 may take 2\.0 GiB.*"
                       r"you use 5\.0 GiB: server beta/big \(5\.0 GiB\)"):
        make_server(core, alice, "s1")


def test_a_user_at_her_share_is_refused_a_new_overlay_of_any_kind(core, alice):
    with_settings(core, user_disk_max=12 * GIB)
    overlays.create(core, alice, "alice-maps", kind="workshop")  # 10 GiB
    overlay_script.create(core, alice, "alice-build")  # 2 GiB: 12 GiB, the whole share
    for make in (lambda: overlays.create(core, alice, "alice-cfg"),
                 lambda: overlays.create(core, alice, "alice-more", kind="workshop"),
                 lambda: overlay_script.create(core, alice, "alice-other")):
        with pytest.raises(disk_share.OverShare,
                           match=r"past your 12\.0 GiB share \(you use 12\.0 GiB: Workshop"
                                 r" overlay 'alice-maps' \(10\.0 GiB\), script overlay"
                                 r" 'alice-build' \(2\.0 GiB\)\)"):
            make()
    assert [o.id for o in overlays.list_for(core, alice)] == ["alice-build", "alice-maps"]
    assert job_count(core) == 0
    # Refused, not retired: the id is still hers to use once there is room.
    overlays.delete(core, alice, "alice-build")
    assert overlays.create(core, alice, "alice-cfg").kind == "files"


def test_another_user_is_unaffected_by_a_full_share(core, alice, bob):
    with_settings(core, user_disk_max=12 * GIB)
    overlays.create(core, alice, "alice-maps", kind="workshop")
    make_server(core, alice, "a1")
    with pytest.raises(disk_share.OverShare):
        make_server(core, alice, "a2")
    make_server(core, bob, "b1")
    assert overlays.create(core, bob, "bob-maps", kind="workshop").owner_id == bob.user_id
    assert disk_share.for_actor(core, bob).used == 12 * GIB
    assert disk_share.for_actor(core, alice).used == 12 * GIB


def test_deleting_a_server_or_an_overlay_frees_share(core, alice):
    with_settings(core, user_disk_max=12 * GIB)
    overlays.create(core, alice, "alice-maps", kind="workshop")
    server_id = make_server(core, alice, "a1")
    with pytest.raises(disk_share.OverShare):
        make_server(core, alice, "a2")
    # A server's writes stay on its host until the delete job has removed them.
    finish_job(core, servers.delete(core, alice, server_id, "a1"))
    make_server(core, alice, "a2")
    with pytest.raises(disk_share.OverShare):
        overlays.create(core, alice, "alice-cfg")
    overlays.delete(core, alice, "alice-maps")
    overlays.create(core, alice, "alice-cfg")
    assert disk_share.for_actor(core, alice).used == 2 * GIB + 512 * (1 << 20)


def test_an_admin_is_not_held_to_the_share_but_sees_the_use(core, admin):
    with_settings(core, user_disk_max=4 * GIB)
    for name in ("adm-1", "adm-2"):
        overlays.create(core, admin, name, kind="workshop")
    share = disk_share.for_actor(core, admin)
    assert share.used == 20 * GIB and not share.bound
    assert share.text == ("Disk: the caps of what you own add up to 20.0 GiB (an admin is not"
                          " held to the 4.0 GiB share users get)")


def test_the_caption_says_the_use_the_share_and_what_is_left(core, alice):
    assert disk_share.for_actor(core, alice).text == (
        "Disk: the caps of what you own add up to 0 bytes of your 40.0 GiB share"
        " (40.0 GiB left)")
    make_server(core, alice, "a1")
    assert disk_share.for_actor(core, alice).text == (
        "Disk: the caps of what you own add up to 2.0 GiB of your 40.0 GiB share"
        " (38.0 GiB left)")


def test_a_workshop_build_asks_the_host_for_no_more_than_the_share_leaves(core, alice):
    overlays.create(core, alice, "alice-maps", kind="workshop")
    workshop.set_ids(core, alice, "alice-maps", "1000000001", "")

    def max_size() -> str:
        job = jobs.get(core, alice, overlays.build(core, alice, "alice-maps", "beta"))
        finish_job(core, job.id)
        return job.extravars["left4me_overlay_max_size"]

    assert max_size() == "10G"  # the per-overlay cap: the share has room for it
    make_server(core, alice, "a1")
    make_server(core, alice, "a2")  # 4 GiB of writes
    with_settings(core, user_disk_max=12 * GIB)  # an admin lowers the share
    assert max_size() == "8G"
    with_settings(core, user_disk_max=4 * GIB)
    queued = job_count(core)
    with pytest.raises(disk_share.OverShare, match="'alice-maps' has no room left to build"):
        overlays.build(core, alice, "alice-maps", "beta")
    assert job_count(core) == queued


def test_an_admin_s_reconcile_is_not_stopped_by_one_user_s_full_share(core, alice, admin):
    overlays.create(core, alice, "alice-maps", kind="workshop")
    workshop.set_ids(core, alice, "alice-maps", "1000000001", "")
    blueprint = blueprints.create(core, alice, "maps", ["alice-maps"],
                                  blueprints.BlueprintSettings())
    server_id, _job = servers.create(core, alice, "a1", "beta", blueprint.id)
    with core.db.connect() as conn:
        conn.execute("UPDATE jobs SET state = ?", (jobs.SUCCEEDED,))
    with_settings(core, user_disk_max=4 * GIB)  # less than her server and overlay hold
    with pytest.raises(disk_share.OverShare):
        servers.restart(core, alice, server_id)  # she is told, nothing queued
    queued = job_count(core)
    reconcile.reconcile_host(core, admin, "beta")  # the host's other servers come back
    builds = [j for j in jobs.history(core, admin) if j.kind == "overlay build"
              and j.state == jobs.QUEUED]
    assert [j.extravars["left4me_overlay_max_size"] for j in builds] == ["1"]
    assert job_count(core) == queued + 2  # her overlay's build (the host refuses it) and
    # the reconcile


def test_the_share_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("LEFT4ME_UI_USER_DISK_MAX", "100G")
    assert settings_module.from_environment().user_disk_max == 100 * GIB
    monkeypatch.delenv("LEFT4ME_UI_USER_DISK_MAX")
    assert settings_module.from_environment().user_disk_max == 40 * GIB
    monkeypatch.setenv("LEFT4ME_UI_USER_DISK_MAX", "lots")
    with pytest.raises(ValueError, match="LEFT4ME_UI_USER_DISK_MAX must be a size such as"
                                         " 40G.*'lots'"):
        settings_module.from_environment()


def test_a_refused_create_of_an_unknown_overlay_leaves_nothing(core, alice):
    with_settings(core, user_disk_max=1 * GIB)
    with pytest.raises(disk_share.OverShare, match=r"Workshop overlay 'alice-maps' may take"
                                                   r" 10\.0 GiB.*you use 0 bytes: nothing yet"):
        overlays.create(core, alice, "alice-maps", kind="workshop")
    with pytest.raises(NotFound):
        overlays.get(core, alice, "alice-maps")
    assert not (core.settings.overlays_dir / "alice-maps").exists()
