"""Script overlays: seeded from the collection's example scripts (or empty), edited as
text with limits (nothing stored when refused), owner-only, built by a playbooks/overlay.yml
job carrying the script as text never rendered, and the last build said in words (a failed
one keeps the previous build)."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest
from domain_helpers import finish_job, with_settings

from left4me_ui import audit, blueprints, jobs, overlays, servers
from left4me_ui.authz import NotFound
from left4me_ui.core import Core
from left4me_ui.overlays import OverlayError
from left4me_ui.overlays.kinds import script as overlay_script
from left4me_ui.runner import load_inventory

SHIPPED = (Path(__file__).resolve().parents[3] / "collections/ansible_collections/left4me/l4d2"
           / "roles/overlays/files/scripts")
SCRIPT = "#!/bin/sh\nset -eu\nmkdir -p /overlay/left4dead2/cfg\n"


@pytest.fixture
def maps(core, alice) -> str:
    overlay_script.create(core, alice, "alice-maps")
    overlay_script.save(core, alice, "alice-maps", SCRIPT)
    return "alice-maps"


def finish(core: Core, job_id: int, state: str, output: list[str] | None = None) -> None:
    """End the next queued job (job_id), its log task having shown `output`, the way the
    engine does (events through its callback, then its finishing step)."""
    if output is None:
        finish_job(core, job_id, state)
        return
    job = jobs.claim(core)
    assert job is not None and job.id == job_id, (job, job_id)
    jobs._Run(core, job).event({
        "event": "runner_on_ok", "stdout": "ok: [alpha] => \n  msg:\n"
        + "".join(f"  - {line}\n" for line in output),
        "event_data": {"host": job.host, "task": overlay_script.LOG_TASK}})
    with core.db.connect() as conn:
        jobs._finish(conn, core, job, state, 0 if state == jobs.SUCCEEDED else 2, None)


# --- create and edit ---------------------------------------------------------------------


@pytest.mark.parametrize("example", ["cedapug-maps.sh", "competitive-config.sh",
                                     "l4d2center-maps.sh", "tickrate-pack.sh"])
def test_a_script_overlay_starts_from_each_shipped_example(core, alice, example):
    assert example in overlay_script.examples()
    created = overlay_script.create(core, alice, "seeded", example)
    assert (created.kind, created.revision) == ("script", 1)
    assert overlay_script.script(core, alice, "seeded") == (SHIPPED / example).read_text()


def test_an_empty_start_and_an_unknown_example(core, alice):
    with pytest.raises(OverlayError, match=r"there is no example script '\.\./etc/passwd';"
                                           r" pick one of cedapug-maps\.sh, "):
        overlay_script.create(core, alice, "bad", "../etc/passwd")
    assert overlays.list_for(core, alice) == []  # nothing stored
    overlay_script.create(core, alice, "blank")
    assert overlay_script.script(core, alice, "blank") == ""
    with pytest.raises(OverlayError, match="the script of overlay 'blank' is empty; write one"):
        overlays.build(core, alice, "blank", "alpha")
    assert jobs.history(core, alice) == []


def test_saving_bumps_the_revision_and_is_audited_once_per_change(core, alice, maps):
    assert overlays.get(core, alice, maps).revision == 2
    assert overlay_script.save(core, alice, maps, SCRIPT).revision == 2  # the same text
    changed = overlay_script.save(core, alice, maps, "echo hi\r\necho there\r\n")
    assert changed.revision == 3
    assert overlay_script.script(core, alice, maps) == "echo hi\necho there\n"  # sh-able
    with core.db.connect() as conn:
        saves = [e for e in audit.entries(conn) if e.action == "save overlay script"]
    assert len(saves) == 2


@pytest.mark.parametrize(("text", "message"), [
    (b"echo hi\n", "the script must be text"),
    ("echo hi\0\n", "the script contains a NUL byte"),
    ("echo \ud800\n", "the script is not valid text"),
    ("#" * (64 * 1024 + 1), "the script is 65537 bytes; the most a script may be is 65536"),
])
def test_bad_script_text_is_refused_and_nothing_is_stored(core, alice, maps, text, message):
    with pytest.raises(OverlayError, match=message):
        overlay_script.save(core, alice, maps, text)
    assert overlay_script.script(core, alice, maps) == SCRIPT
    assert overlays.get(core, alice, maps).revision == 2


def test_only_the_owner_or_an_admin_reads_edits_or_builds_a_script(core, alice, bob, admin,
                                                                   maps):
    for attempt in (lambda: overlay_script.script(core, bob, maps),
                    lambda: overlay_script.save(core, bob, maps, "rm -rf /overlay\n"),
                    lambda: overlays.build(core, bob, maps, "alpha"),
                    lambda: overlay_script.last_build(core, bob, maps)):
        with pytest.raises(NotFound):
            attempt()
    assert overlay_script.script(core, alice, maps) == SCRIPT
    assert jobs.history(core, admin) == []
    overlay_script.save(core, admin, maps, SCRIPT + "echo by admin\n")
    assert overlay_script.script(core, alice, maps).endswith("echo by admin\n")


def test_files_and_script_editors_refuse_the_other_kind(core, alice, maps):
    overlays.create(core, alice, "alice-cfg")
    with pytest.raises(OverlayError, match="'alice-cfg' is a files overlay, not a script"):
        overlay_script.save(core, alice, "alice-cfg", SCRIPT)
    with pytest.raises(OverlayError, match="'alice-maps' is a script overlay, not a files"):
        overlays.write_text(core, alice, maps, "a.cfg", "x")


# --- builds ------------------------------------------------------------------------------


def test_a_build_queues_an_overlay_job_with_the_script(core, alice, maps):
    job = jobs.get(core, alice, overlays.build(core, alice, maps, "alpha"))
    assert (job.kind, job.host, job.playbook, job.state) == (
        "overlay build", "alpha", "overlay.yml", jobs.QUEUED)
    assert job.extravars == {
        "left4me_overlay_id": "alice-maps", "left4me_overlay_state": "present",
        "left4me_overlay_incarnation": overlays.get(core, alice, maps).incarnation,
        "left4me_overlay_revision": 2, "left4me_overlay_kind": "script",
        "left4me_overlay_script": SCRIPT}
    assert job.expected_tasks == 17  # a script build's task results, not a files build's 11


def test_files_and_script_builds_each_expect_the_tasks_their_own_last_success_ran(
        core, alice, maps):
    # One job kind and playbook (overlay.yml) for both: a files build queued after a script
    # build succeeded must not expect the script's 13 tasks ("7 of 13" at its end).
    overlays.create(core, alice, "alice-cfg")
    overlays.write_text(core, alice, "alice-cfg", "motd.txt", "hi\n")
    finish_job(core, overlays.build(core, alice, "alice-cfg", "alpha"), done_tasks=6)
    finish_job(core, overlays.build(core, alice, maps, "alpha"), done_tasks=13)
    assert jobs.get(core, alice, overlays.build(core, alice, "alice-cfg", "alpha")
                    ).expected_tasks == 6
    assert jobs.get(core, alice, overlays.build(core, alice, maps, "alpha")
                    ).expected_tasks == 13


def test_a_server_stacking_a_script_overlay_builds_it_first(core, alice, admin, maps):
    blueprint = blueprints.create(core, alice, "coop", [maps], blueprints.BlueprintSettings())
    _server, server_job = servers.create(core, alice, "alice1", "alpha", blueprint.id)
    queued = sorted((j.id, j.kind) for j in jobs.history(core, admin) if not j.finished)
    assert [kind for _id, kind in queued] == ["overlay build", "server create"]
    build = jobs.get(core, admin, queued[0][0])
    assert build.extravars["left4me_overlay_script"] == SCRIPT and queued[0][0] < server_job


def test_the_last_build_shows_its_output_and_a_failure_keeps_the_previous(core, alice, maps):
    assert overlay_script.last_build(core, alice, maps) is None
    first = overlays.build(core, alice, maps, "alpha")
    running = overlay_script.last_build(core, alice, maps)
    assert running.message == "building revision 2 on alpha (queued)"
    finish(core, first, jobs.SUCCEEDED, ["wrote server.cfg", "done"])
    done = overlay_script.last_build(core, alice, maps)
    assert done.log == ["wrote server.cfg", "done"]
    assert done.message == ("revision 2 built on alpha; servers use it from their next"
                            " (re)start")

    overlay_script.save(core, alice, maps, SCRIPT + "exit 3\n")
    finish(core, overlays.build(core, alice, maps, "alpha"), jobs.FAILED, ["oops"])
    failed = overlay_script.last_build(core, alice, maps)
    assert (failed.state, failed.revision, failed.kept_revision, failed.log) == (
        jobs.FAILED, 3, 2, ["oops"])
    assert failed.message == ("build failed; the previous build (revision 2) is still what"
                              " servers use on alpha")
    assert [(b.host, b.revision, b.current) for b in overlays.builds(core, alice, maps)] == [
        ("alpha", 2, False)]


def test_a_failed_first_build_says_there_is_no_previous_one(core, alice, maps):
    finish(core, overlays.build(core, alice, maps, "beta"), jobs.FAILED)
    failed = overlay_script.last_build(core, alice, maps)
    assert failed.message == ("build failed; beta has no earlier build of this overlay, so a"
                              " server stacking it cannot start there until a build succeeds")


@pytest.fixture
def local_core(core: Core, tmp_path: Path) -> Core:
    """host-a is this machine (local connection, no become): the real playbook runs."""
    inventory = tmp_path / "local.yml"
    inventory.write_text(
        "l4d2_hosts:\n  hosts:\n    host-a:\n      ansible_connection: local\n"
        "      ansible_become: false\n"
        f"      ansible_python_interpreter: {sys.executable}\n"
        f"      game_host_state_dir: {tmp_path / 'host'}\n"
        f"      game_host_config_dir: {tmp_path / 'host-etc'}\n"
        "      game_host_user: left4me-nobody-here\n")
    (tmp_path / "host" / "overlays").mkdir(parents=True)
    with_settings(core, inventory=inventory)
    core.inventory_loader = load_inventory
    return core


def test_a_template_in_a_script_is_sent_as_text_never_run(local_core, alice, tmp_path):
    # The script reaches ansible as a job variable: a lookup in it must never run here.
    # (The module then refuses this machine, which has no runtime user: the job fails after
    # the arguments were templated, which is the point.)
    proof = tmp_path / "ran"
    overlay_script.create(local_core, alice, "tpl")
    overlay_script.save(local_core, alice, "tpl",
                        f"#!/bin/sh\necho {{{{ lookup('pipe', 'touch {proof}') }}}}\n")
    overlays.build(local_core, alice, "tpl", "host-a")
    done = jobs.run_next(local_core)
    assert done.state == jobs.FAILED
    assert "runtime user 'left4me-nobody-here' does not exist" in done.error
    assert not proof.exists()
    assert not (tmp_path / "host" / "overlays" / "tpl").exists()


def test_the_playbook_refuses_a_script_build_without_a_script(local_core, alice, tmp_path):
    with local_core.db.connect() as conn:
        bad = jobs.enqueue(conn, local_core, alice, kind="overlay build", host="host-a",
                           target="bad", playbook="overlay.yml", extravars={
                               "left4me_overlay_id": "x", "left4me_overlay_kind": "script",
                               "left4me_overlay_script": "  \n"})
        odd = jobs.enqueue(conn, local_core, alice, kind="overlay build", host="host-a",
                           target="odd", playbook="overlay.yml", extravars={
                               "left4me_overlay_id": "x", "left4me_overlay_kind": "zip"})
    failed = jobs.run_next(local_core)
    assert (failed.id, failed.state) == (bad, jobs.FAILED)
    assert "left4me_overlay_script must be the build script, as text" in failed.error
    failed = jobs.run_next(local_core)
    assert (failed.id, failed.state) == (odd, jobs.FAILED)
    assert 'left4me_overlay_kind must be one of files, script; got "zip"' in failed.error
    assert list((tmp_path / "host" / "overlays").iterdir()) == []


# --- an id never comes back (review M2) ---------------------------------------------------

TOKEN_OUTPUT = ["using token s3cr3t-download-token", "done"]


def test_a_deleted_overlays_id_is_never_given_to_anyone_again(core, alice, bob, admin, maps,
                                                              clock):
    job = overlays.build(core, alice, maps, "alpha")
    finish(core, job, jobs.SUCCEEDED, TOKEN_OUTPUT)
    overlays.delete(core, alice, maps)
    clock.advance(60)
    for someone in (bob, alice, admin):  # not even its owner: its logs and host files were
        with pytest.raises(OverlayError, match="overlay id 'alice-maps' belonged to an overlay"
                                               " that was deleted; an id never comes back"):
            overlay_script.create(core, someone, maps)
    with pytest.raises(NotFound):
        jobs.get(core, bob, job)
    assert overlays.list_for(core, admin) == []


def legacy_build(core: Core, actor, overlay_id: str, output: list[str]) -> int:
    """A build job as the UI queued them before incarnations (its extravars name the id
    only), run to success with `output`."""
    with core.db.connect() as conn:
        job_id = jobs.enqueue(conn, core, actor, kind=overlays.KIND_BUILD, host="alpha",
                              target=f"alpha/overlay {overlay_id} r2",
                              playbook=overlays.BUILD_PLAYBOOK, extravars={
                                  "left4me_overlay_id": overlay_id,
                                  "left4me_overlay_state": "present",
                                  "left4me_overlay_revision": 2,
                                  "left4me_overlay_kind": "script",
                                  "left4me_overlay_script": SCRIPT})
    return job_id


def test_an_id_reused_before_ids_were_retired_shows_none_of_the_old_overlays_builds(
        core, alice, bob, clock):
    # Before this fix: alice's overlay "maps" was built and deleted, bob made "maps" after.
    old = legacy_build(core, alice, "maps", TOKEN_OUTPUT)
    finish(core, old, jobs.SUCCEEDED, TOKEN_OUTPUT)
    late = legacy_build(core, alice, "maps", ["still running when alice deleted it"])
    clock.advance(60)
    overlay_script.create(core, bob, "maps")
    overlay_script.save(core, bob, "maps", SCRIPT)
    # Before: "last_build for bob: 1 alpha succeeded ['using token s3cr3t-download-token']".
    assert overlay_script.last_build(core, bob, "maps") is None
    finish(core, late, jobs.SUCCEEDED, ["alice's tree"])  # finishes after bob's was made
    assert overlays.builds(core, bob, "maps") == []  # not taken for bob's build
    assert overlay_script.last_build(core, bob, "maps") is None
    mine = overlays.build(core, bob, "maps", "alpha")
    finish(core, mine, jobs.SUCCEEDED, ["bob's own"])
    shown = overlay_script.last_build(core, bob, "maps")
    assert (shown.job_id, shown.log) == (mine, ["bob's own"])


def test_the_last_build_is_one_its_viewer_may_see(core, alice, admin, maps):
    own = overlays.build(core, alice, maps, "alpha")
    finish(core, own, jobs.SUCCEEDED, ["alice's build"])
    by_admin = overlays.build(core, admin, maps, "beta")
    finish(core, by_admin, jobs.SUCCEEDED, ["the admin's build"])
    with pytest.raises(NotFound):
        jobs.get(core, alice, by_admin)  # jobs' own rule: not hers, no server of hers
    assert overlay_script.last_build(core, alice, maps).log == ["alice's build"]
    assert overlay_script.last_build(core, admin, maps).log == ["the admin's build"]


def test_the_migration_retires_ids_deleted_before_it_and_keeps_the_data(tmp_path):
    from left4me_ui import db

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    for script in db.MIGRATIONS[:6]:  # a database as the UI left it before
        conn.executescript(script)
    conn.executescript("""
        PRAGMA user_version=6;
        INSERT INTO users VALUES (1, 'alice', 'x', 'user', 0, NULL, 1, 1);
        INSERT INTO overlays (id, owner_id, kind, created_at, updated_at)
            VALUES ('kept', 1, 'files', 5, 5);
        INSERT INTO jobs (kind, actor_name, host, target, playbook, extravars, created_at)
            VALUES ('overlay build', 'alice', 'alpha', 't', 'overlay.yml',
                    '{"left4me_overlay_id": "built-then-deleted"}', 2),
                   ('overlay build', 'alice', 'alpha', 't', 'overlay.yml',
                    '{"left4me_overlay_id": "kept"}', 6),
                   ('server create', 'alice', 'alpha', 't', 'server.yml', '{}', 7);
        INSERT INTO audit (at, actor, action, target, outcome)
            VALUES (3, 'alice', 'delete overlay', 'overlay never-built', 'ok');
    """)
    conn.close()
    assert db.Database(path).migrate() == len(db.MIGRATIONS)
    conn = sqlite3.connect(path)
    retired = sorted(r[0] for r in conn.execute("SELECT id FROM retired_overlay_ids"))
    [(overlay_id, incarnation)] = conn.execute("SELECT id, incarnation FROM overlays")
    conn.close()
    assert retired == ["built-then-deleted", "never-built"]
    assert overlay_id == "kept" and len(incarnation) == 16
