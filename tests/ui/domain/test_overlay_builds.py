"""Users' overlays on the hosts: a build is a playbooks/overlay.yml job with the overlay's
files, its success records the revision the host has, blueprints stack only overlays their
owner may view, and a server job is preceded by the build of a stale overlay it stacks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from domain_helpers import finish_job, with_settings

from left4me_ui import authz, blueprints, jobs, overlays, servers
from left4me_ui.authz import Forbidden, NotFound
from left4me_ui.core import Core
from left4me_ui.overlays import OverlayError
from left4me_ui.runner import load_inventory
from left4me_ui.validation import InstanceError

CFG = "sv_cheats 0\n"


@pytest.fixture
def cfg(core, alice) -> str:
    overlays.create(core, alice, "alice-cfg")
    overlays.write_text(core, alice, "alice-cfg", "left4dead2/cfg/server.cfg", CFG)
    return "alice-cfg"


def queued_kinds(core: Core, admin) -> list[tuple[int, str, str]]:
    return sorted((j.id, j.kind, j.host) for j in jobs.history(core, admin) if not j.finished)


# --- build ------------------------------------------------------------------------------


def test_build_queues_an_overlay_job_with_the_files(core, alice, cfg):
    overlays.make_folder(core, alice, cfg, "left4dead2/maps")  # folders are not files
    job_id = overlays.build(core, alice, cfg, "alpha")
    job = jobs.get(core, alice, job_id)
    assert (job.kind, job.host, job.playbook, job.state) == (
        "overlay build", "alpha", "overlay.yml", jobs.QUEUED)
    assert job.extravars == {
        "left4me_overlay_id": "alice-cfg", "left4me_overlay_state": "present",
        "left4me_overlay_incarnation": overlays.get(core, alice, cfg).incarnation,
        "left4me_overlay_revision": 3,  # created, written, folder made
        "left4me_overlay_files": [
            {"dest": "left4dead2/cfg/server.cfg", "content": CFG, "mode": "0644"}]}
    assert job.secrets_from is None


def test_who_may_build_and_where(core, alice, bob, admin, cfg):
    with pytest.raises(NotFound):
        overlays.build(core, bob, cfg, "alpha")
    with pytest.raises(NotFound, match="no host .gamma. in the inventory"):
        overlays.build(core, alice, cfg, "gamma")  # not in the inventory
    with core.db.connect() as conn:
        authz.set_user_hosts_policy(conn, admin, ["beta"])
    with pytest.raises(Forbidden, match="may not put servers on host 'alpha'"):
        overlays.build(core, alice, cfg, "alpha")
    assert jobs.history(core, admin) == []
    overlays.build(core, alice, cfg, "beta")
    overlays.build(core, admin, cfg, "alpha")  # an admin may build anyone's, anywhere


def test_a_build_too_big_for_a_job_or_not_text_is_refused_and_nothing_queued(core, alice,
                                                                             admin, cfg):
    overlays.write_text(core, alice, cfg, "left4dead2/cfg/big.cfg", "x" * 20_000)
    with_settings(core, overlay_max_total_bytes=16_000)  # lowered after the files went in
    with pytest.raises(OverlayError, match=r"'alice-cfg' is 19\.\d KiB as a build's variables;"
                                           r" a build sends at most 15\.6 KiB"):
        overlays.build(core, alice, cfg, "alpha")
    with_settings(core, overlay_max_total_bytes=512 * 1024 * 1024)
    overlays.upload(core, alice, cfg, "left4dead2/maps/x.vpk", b"\xff\xfe")
    with pytest.raises(OverlayError, match="x.vpk is not UTF-8 text"):
        overlays.build(core, alice, cfg, "alpha")
    assert jobs.history(core, admin) == []


def test_a_successful_build_records_the_revision_on_that_host(core, alice, cfg):
    assert overlays.builds(core, alice, cfg) == []
    failed = overlays.build(core, alice, cfg, "alpha")
    finish_job(core, failed, jobs.FAILED)
    assert overlays.builds(core, alice, cfg) == []  # a failed build records nothing
    job_id = overlays.build(core, alice, cfg, "alpha")
    finish_job(core, job_id)
    (built,) = overlays.builds(core, alice, cfg)
    assert (built.host, built.revision, built.current) == ("alpha", 2, True)
    overlays.write_text(core, alice, cfg, "motd.txt", "hi\n")
    (built,) = overlays.builds(core, alice, cfg)
    assert (built.revision, built.current) == (2, False)  # out of date: revision 3 now
    finish_job(core, overlays.build(core, alice, cfg, "alpha"))
    assert [(b.host, b.revision, b.current) for b in overlays.builds(core, alice, cfg)] == [
        ("alpha", 3, True)]


# --- blueprints stack the owner's overlays -----------------------------------------------


def test_a_blueprint_stacks_only_overlays_its_owner_may_view(core, alice, bob, admin, cfg):
    settings = blueprints.BlueprintSettings()
    with pytest.raises(InstanceError, match="overlay 'alice-cfg' is another user's"):
        blueprints.create(core, bob, "mine", ["demo-config", "alice-cfg"], settings)
    bobs = blueprints.create(core, bob, "mine", ["demo-config"], settings)
    with pytest.raises(InstanceError, match="overlay 'alice-cfg' is another user's"):
        blueprints.update(core, bob, bobs.id, overlays=["alice-cfg"])
    assert blueprints.get(core, bob, bobs.id).overlays == ("demo-config",)
    overlays.create(core, bob, "bob-cfg")
    alices = blueprints.create(core, alice, "coop", ["alice-cfg", "demo-config"], settings)
    # An admin editing alice's blueprint may not hand her bob's overlay either...
    with pytest.raises(InstanceError, match="overlay 'bob-cfg' is another user's"):
        blueprints.update(core, admin, alices.id, overlays=["bob-cfg"])
    # ...but an admin's own blueprint may stack anyone's.
    blueprints.create(core, admin, "mix", ["alice-cfg", "bob-cfg"], settings)


def test_a_server_refuses_a_blueprint_holding_an_overlay_its_owner_lost(core, alice, bob, cfg):
    # bob stacked the id before alice made it (an unknown id is the host's to check)
    bobs = blueprints.create(core, bob, "mine", ["alice-new"], blueprints.BlueprintSettings())
    overlays.create(core, alice, "alice-new")
    with pytest.raises(InstanceError, match="overlay 'alice-new' is another user's"):
        servers.create(core, bob, "bob1", "alpha", bobs.id)
    assert servers.list_for(core, bob) == []


# --- servers build what they stack first --------------------------------------------------


def test_a_server_on_a_stale_overlay_is_preceded_by_its_build(core, alice, admin, cfg):
    blueprint = blueprints.create(core, alice, "coop", ["alice-cfg", "demo-config"],
                                  blueprints.BlueprintSettings())
    server_id, job_id = servers.create(core, alice, "alice1", "alpha", blueprint.id)
    (build_id, build_kind, host), (server_job, server_kind, _) = queued_kinds(core, admin)
    assert (build_kind, host, server_kind, server_job) == (
        "overlay build", "alpha", "server create", job_id)
    assert build_id < job_id  # claimed first: jobs on one host run in id order
    assert jobs.get(core, alice, build_id).extravars["left4me_overlay_files"][0]["dest"] == \
        "left4dead2/cfg/server.cfg"
    running = jobs.claim(core)
    assert running.id == build_id
    assert jobs.claim(core) is None  # the server job waits for the build on alpha
    with core.db.connect() as conn:
        jobs._finish(conn, core, running, jobs.SUCCEEDED, 0, None)
    finish_job(core, job_id)
    assert servers.get(core, alice, server_id).needs_restart is False

    # Built and current: a restart queues only the server job.
    finish_job(core, servers.restart(core, alice, server_id))
    assert queued_kinds(core, admin) == []

    # An edit asks for a restart, which builds the new revision first.
    overlays.write_text(core, alice, cfg, "motd.txt", "hello\n")
    assert servers.get(core, alice, server_id).needs_restart is True
    restart = servers.restart(core, alice, server_id)
    assert [k for _i, k, _h in queued_kinds(core, admin)] == ["overlay build", "server restart"]
    rebuild = queued_kinds(core, admin)[0][0]
    assert jobs.get(core, alice, rebuild).extravars["left4me_overlay_revision"] == 3
    finish_job(core, rebuild)
    assert servers.get(core, alice, server_id).needs_restart is True  # built, not applied
    finish_job(core, restart)
    assert servers.get(core, alice, server_id).needs_restart is False


def test_a_failed_build_ends_the_server_jobs_waiting_on_it_on_that_host(core, alice, admin,
                                                                       cfg):
    blueprint = blueprints.create(core, alice, "coop", ["alice-cfg"],
                                  blueprints.BlueprintSettings())
    other = blueprints.create(core, alice, "plain", ["demo-config"],
                              blueprints.BlueprintSettings())
    _server_id, create = servers.create(core, alice, "alice1", "alpha", blueprint.id)
    _plain_id, plain = servers.create(core, alice, "alice2", "alpha", other.id)
    _beta_id, on_beta = servers.create(core, alice, "alice3", "beta", blueprint.id)
    build = queued_kinds(core, admin)[0][0]
    finish_job(core, build, jobs.FAILED)
    ended = jobs.get(core, alice, create)
    assert ended.state == jobs.FAILED
    assert ended.error == (f"not run: overlay 'alice-cfg' did not build on alpha (job {build}"
                           " failed); fix the overlay, then run this again")
    # A server on alpha that does not stack it, and the one on beta, still wait their turn.
    assert jobs.get(core, alice, plain).state == jobs.QUEUED
    assert jobs.get(core, alice, on_beta).state == jobs.QUEUED


def test_a_server_whose_overlay_cannot_be_built_is_not_created(core, alice, admin, cfg):
    overlays.upload(core, alice, cfg, "left4dead2/maps/x.vpk", b"\xff\xfe")
    blueprint = blueprints.create(core, alice, "coop", ["alice-cfg"],
                                  blueprints.BlueprintSettings())
    with pytest.raises(OverlayError, match="x.vpk is not UTF-8 text"):
        servers.create(core, alice, "alice1", "alpha", blueprint.id)
    assert servers.list_for(core, alice) == []
    assert jobs.history(core, admin) == []


def test_a_build_already_queued_is_not_queued_twice(core, alice, admin, cfg):
    blueprint = blueprints.create(core, alice, "coop", ["alice-cfg"],
                                  blueprints.BlueprintSettings())
    overlays.build(core, alice, cfg, "alpha")
    servers.create(core, alice, "alice1", "alpha", blueprint.id)
    servers.create(core, alice, "alice2", "beta", blueprint.id)  # another host: its own
    assert [(k, h) for _i, k, h in queued_kinds(core, admin)] == [
        ("overlay build", "alpha"), ("server create", "alpha"), ("overlay build", "beta"),
        ("server create", "beta")]


def test_deleting_a_built_overlay_removes_it_from_its_hosts(core, alice, admin, cfg):
    blueprint = blueprints.create(core, alice, "coop", ["alice-cfg"],
                                  blueprints.BlueprintSettings())
    finish_job(core, overlays.build(core, alice, cfg, "alpha"))
    with pytest.raises(blueprints.InUse, match="used by blueprint 'coop'"):
        overlays.delete(core, alice, cfg)
    assert queued_kinds(core, admin) == []  # refused: no remove job either
    blueprints.update(core, alice, blueprint.id, overlays=[])
    overlays.build(core, alice, cfg, "beta")  # queued, not run yet: beta may get it too
    incarnation = overlays.get(core, alice, cfg).incarnation
    overlays.delete(core, alice, cfg)
    removes = [jobs.get(core, admin, i) for i, k, _h in queued_kinds(core, admin)
               if k == "overlay remove"]
    assert [(j.host, j.playbook, j.extravars) for j in removes] == [
        (host, "overlay.yml", {"left4me_overlay_id": "alice-cfg",
                               "left4me_overlay_incarnation": incarnation,
                               "left4me_overlay_state": "absent"})
        for host in ("alpha", "beta")]
    with core.db.connect() as conn:
        assert conn.execute("SELECT COUNT(*) FROM overlay_builds").fetchone()[0] == 0


# --- the playbook, run for real over the local connection -----------------------------------


@pytest.fixture
def local_core(core: Core, tmp_path: Path) -> Core:
    """host-a is this machine (local connection, no become) with its left4me state dir in
    tmp_path; the real playbooks run against it."""
    inventory = tmp_path / "local.yml"
    inventory.write_text(
        "l4d2_hosts:\n  hosts:\n    host-a:\n      ansible_connection: local\n"
        "      ansible_become: false\n"
        f"      ansible_python_interpreter: {sys.executable}\n"
        f"      game_host_state_dir: {tmp_path / 'host'}\n"
        f"      game_host_config_dir: {tmp_path / 'host-etc'}\n"
        "      game_host_group: root\n")
    (tmp_path / "host" / "overlays").mkdir(parents=True)  # as the game_host role leaves it
    with_settings(core, inventory=inventory)
    core.inventory_loader = load_inventory
    return core


def test_the_build_job_writes_the_overlay_and_a_bad_one_touches_nothing(local_core, alice,
                                                                        tmp_path, cfg):
    built = tmp_path / "host" / "overlays" / "alice-cfg"
    job = jobs.get(local_core, alice, overlays.build(local_core, alice, cfg, "host-a"))
    done = jobs.run_next(local_core)
    assert (done.id, done.state, done.error) == (job.id, jobs.SUCCEEDED, None)
    assert (built / "left4dead2/cfg/server.cfg").read_text() == CFG
    assert [(b.host, b.revision) for b in overlays.builds(local_core, alice, cfg)] == [
        ("host-a", 2)]

    # The playbook's own refusal, before the host is touched: a crafted job's bad input.
    with local_core.db.connect() as conn:
        bad = jobs.enqueue(conn, local_core, alice, kind="overlay build", host="host-a",
                           target="bad", playbook="overlay.yml", extravars={
                               "left4me_overlay_id": "../etc", "left4me_overlay_revision": 9,
                               "left4me_overlay_files": [{"dest": "/etc/passwd",
                                                          "content": "x"}]})
    failed = jobs.run_next(local_core)
    assert (failed.id, failed.state) == (bad, jobs.FAILED)
    assert "left4me_overlay_id must be 1 to 64 of a-z" in failed.error
    assert "left4me_overlay_files[0]: dest \"/etc/passwd\" must be relative" in failed.error
    assert "nothing was changed" in failed.error
    assert sorted(p.name for p in (tmp_path / "host" / "overlays").iterdir()) == [
        ".alice-cfg.incarnation", "alice-cfg"]
    assert [(b.host, b.revision) for b in overlays.builds(local_core, alice, cfg)] == [
        ("host-a", 2)]  # the failed job recorded nothing
    assert json.loads((built / ".left4me-files.json").read_text())  # the build's manifest


def test_a_host_directory_of_another_overlay_of_the_same_id_is_never_built_into_or_removed(
        local_core, alice, tmp_path, cfg):
    overlays_dir = tmp_path / "host" / "overlays"
    mark = overlays_dir / ".alice-cfg.incarnation"
    mine = overlays.get(local_core, alice, cfg).incarnation
    overlays.build(local_core, alice, cfg, "host-a")
    assert jobs.run_next(local_core).state == jobs.SUCCEEDED
    assert mark.read_text() == f"{mine}\n"
    # The directory now belongs to an overlay of the same id that another UI made (or this
    # UI before its database was lost), with that one's files.
    mark.write_text("0123456789abcdef\n")
    theirs = overlays_dir / "alice-cfg" / "left4dead2" / "cfg" / "server.cfg"
    theirs.write_text("rcon_password theirs\n")
    overlays.write_text(local_core, alice, cfg, "motd.txt", "hi\n")
    overlays.build(local_core, alice, cfg, "host-a")
    refused = jobs.run_next(local_core)
    assert refused.state == jobs.FAILED
    assert "overlay alice-cfg on this host belongs to another overlay of the same id" in \
        refused.error and "Nothing was changed" in refused.error
    assert theirs.read_text() == "rcon_password theirs\n"
    assert not (overlays_dir / "alice-cfg" / "motd.txt").exists()
    assert [(b.host, b.revision) for b in overlays.builds(local_core, alice, cfg)] == [
        ("host-a", 2)]  # the refused build recorded nothing
    overlays.delete(local_core, alice, cfg)  # its remove job must not take their tree
    assert jobs.run_next(local_core).state == jobs.FAILED
    assert theirs.read_text() == "rcon_password theirs\n"
    assert mark.read_text() == "0123456789abcdef\n"


def test_an_unmarked_host_directory_is_taken_by_the_first_build(local_core, alice, tmp_path,
                                                                 cfg):
    # Built before marks existed (or by hand): the first build that names its overlay
    # marks it, and removing the overlay removes the mark too.
    built = tmp_path / "host" / "overlays" / "alice-cfg"
    (built / "left4dead2").mkdir(parents=True)
    overlays.build(local_core, alice, cfg, "host-a")
    assert jobs.run_next(local_core).state == jobs.SUCCEEDED
    mark = tmp_path / "host" / "overlays" / ".alice-cfg.incarnation"
    assert mark.read_text().strip() == overlays.get(local_core, alice, cfg).incarnation
    overlays.delete(local_core, alice, cfg)
    removed = jobs.run_next(local_core)
    assert (removed.kind, removed.state) == ("overlay remove", jobs.SUCCEEDED)
    assert list((tmp_path / "host" / "overlays").iterdir()) == []


def test_reconcile_builds_every_user_overlay_its_servers_stack_first(core, alice, admin, cfg):
    from left4me_ui import reconcile

    blueprint = blueprints.create(core, alice, "coop", ["alice-cfg", "demo-config"],
                                  blueprints.BlueprintSettings())
    server_id, _job = servers.create(core, alice, "alice1", "alpha", blueprint.id)
    for job_id, _kind, _host in queued_kinds(core, admin):
        finish_job(core, job_id)
    # The host was wiped: its record says built, so only reconcile's forced build restores it.
    job_id = reconcile.reconcile_host(core, admin, "alpha")
    (build, _k, _h), (again, kind, _h2) = queued_kinds(core, admin)
    assert (again, kind) == (job_id, "host reconcile") and build < job_id
    assert jobs.get(core, admin, build).extravars["left4me_overlay_id"] == "alice-cfg"
    overlays.write_text(core, alice, cfg, "motd.txt", "hi\n")  # revision 3, while queued
    finish_job(core, build)
    finish_job(core, job_id)
    assert servers.get(core, alice, server_id).needs_restart is True  # built r2, not r3


def test_a_template_in_an_overlay_file_is_written_as_text_never_run(local_core, alice,
                                                                     tmp_path):
    # A job's variables come from people: ansible must never render what they typed.
    proof = tmp_path / "ran"
    text = f"echo {{{{ lookup('pipe', 'touch {proof}') }}}} {{{{ 6 * 7 }}}}\n"
    overlays.create(local_core, alice, "tpl")
    overlays.write_text(local_core, alice, "tpl", "left4dead2/cfg/{{ 1 }}.cfg", text)
    overlays.build(local_core, alice, "tpl", "host-a")
    done = jobs.run_next(local_core)
    assert (done.state, done.error) == (jobs.SUCCEEDED, None)
    written = tmp_path / "host" / "overlays" / "tpl" / "left4dead2" / "cfg" / "{{ 1 }}.cfg"
    assert written.read_text() == text
    assert not proof.exists()
