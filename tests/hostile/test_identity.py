"""Whose is what on the host (issue 17, defects 5 and 6).

(f) Mallory names a new server like an instance on the host that this UI's database does
    not know (another UI made it): refused, and that instance keeps its settings.
(g) Mallory creates an overlay with the id of one Alice deleted: she sees neither Alice's
    build log nor Alice's files.
"""

from __future__ import annotations

import re

import pytest
from hostile_world import ALICE_BUILD_SECRET, STATE, World, make_blueprint

from left4me_ui import accounts, blueprints, boot, jobs, overlays, servers, settings
from left4me_ui.authz import Actor
from left4me_ui.core import Core
from left4me_ui.overlays.kinds import script as overlay_script
from left4me_ui.runner import load_inventory

pytestmark = pytest.mark.testhost


def _rcon_password_on_host(world: World, name: str) -> str:
    cfg = world.host.nsenter(
        "cat", f"{STATE}/overlays/.instance-{name}/left4dead2/cfg/left4me/instance.cfg")
    found = re.search(r'rcon_password\s+"([^"]*)"', cfg)
    return found.group(1) if found else ""


def _other_ui(world: World, tmp_path) -> tuple[Core, Actor]:
    """A second UI on the same host (its own database), as a second UI, AWX or a restored
    backup would be."""
    settings.write_new_secret(tmp_path / "secret")
    other = boot.open_core(settings.Settings(state_dir=tmp_path / "state",
                                             secret_file=tmp_path / "secret",
                                             inventory=world.core.settings.inventory,
                                             port_range=(27900, 27999)),  # apart from this UI's
                           inventory_loader=load_inventory)
    with other.db.connect() as conn:
        accounts._insert_user(conn, other.clock(), "bob", accounts.hash_password("bob's pw"),
                              "user")
    return other, accounts.login(other, "bob", "bob's pw", client="127.0.0.1").actor


def test_f_a_name_the_ui_does_not_know_on_the_host_is_refused(world: World, tmp_path):
    other, bob = _other_ui(world, tmp_path)
    bob_blueprint = blueprints.create(other, bob, "bob", ["demo-config"],
                                      blueprints.BlueprintSettings(hostname="Bob elsewhere"))
    servers.create(other, bob, "orphan", world.host.name, bob_blueprint.id)
    while (job := jobs.run_next(other)) is not None:
        assert job.state == jobs.SUCCEEDED, job.error
    before = _rcon_password_on_host(world, "orphan")
    assert before

    kit = make_blueprint(world, world.mallory, "adopt", ["mallory-kit", "demo-config"],
                         "Mallory's adopted server")
    outcome = ""
    try:
        server_id, _job = servers.create(world.core, world.mallory, "orphan", world.host.name,
                                         kit)
    except Exception as error:  # noqa: BLE001 (any refusal with a message will do)
        outcome = f"refused at once: {error}"
    else:
        (job,) = world.run_jobs(expect="")
        outcome = (f"job {job.state}: {job.error}" if job.state != jobs.SUCCEEDED
                   else "job succeeded")
        if job.state == jobs.SUCCEEDED:  # clean up what she took, through her own UI
            servers.delete(world.core, world.mallory, server_id, "orphan")
            world.run_jobs(expect="")
    after = (_rcon_password_on_host(world, "orphan")
             if world.exists(f"{STATE}/overlays/.instance-orphan") else "(removed)")
    assert outcome != "job succeeded" and after == before, (
        "Mallory adopted 'orphan', an instance another UI made on the host: her server"
        f" create {outcome}; its RCON password {'changed' if after != before else 'kept'}")
    assert "orphan" in outcome.lower() or "exists" in outcome.lower(), (
        f"the refusal does not say which name or why: {outcome}")
    world.assert_alice_unharmed("adopting another UI's instance")


REVEAL = """#!/bin/sh
# Mallory's build: what is in her new overlay before she wrote anything?
find /overlay -type f | sort
find /overlay -type f -exec cat {} + 2>/dev/null || true
echo "mallory's build done"
"""


def test_g_an_overlay_id_alice_deleted_shows_mallory_nothing_of_hers(world: World):
    core, alice, mallory = world.core, world.alice, world.mallory
    assert ALICE_BUILD_SECRET in "\n".join(
        overlay_script.last_build(core, alice, "alice-maps").log)
    # Alice takes the overlay out of her blueprint (her server keeps running on it until
    # its next restart) and deletes it.
    (blueprint,) = blueprints.list_for(core, alice)
    blueprints.update(core, alice, blueprint.id,
                      overlays=[o for o in blueprint.overlays if o != "alice-maps"])
    overlays.delete(core, alice, "alice-maps")
    removal = world.run_jobs(expect="")
    print(f"Alice's delete of alice-maps on the host: {[(j.kind, j.state) for j in removal]}")

    try:
        overlay_script.create(core, mallory, "alice-maps")
    except overlays.OverlayError as refused:
        print(f"Mallory may not reuse the id: {refused}")
        world.assert_alice_unharmed("reusing a deleted overlay id")
        return
    inherited = overlay_script.last_build(core, mallory, "alice-maps")
    assert inherited is None or ALICE_BUILD_SECRET not in "\n".join(inherited.log), (
        f"Mallory reads Alice's build log of the overlay id she reused: {inherited.log}")
    overlay_script.save(core, mallory, "alice-maps", REVEAL)
    overlays.build(core, mallory, "alice-maps", world.host.name)
    world.run_jobs(expect="")
    built = overlay_script.last_build(core, mallory, "alice-maps")
    on_host = world.host.nsenter("sh", "-c", f"find {STATE}/overlays/alice-maps -type f"
                                 " -exec cat {} + 2>/dev/null || true")
    log = "\n".join(built.log) if built else ""
    assert ALICE_BUILD_SECRET not in log and ALICE_BUILD_SECRET not in on_host, (
        "Mallory's overlay with the id Alice deleted holds Alice's files:"
        f" her build saw {log!r}; the host's directory holds {on_host!r}")
    world.assert_alice_unharmed("reusing a deleted overlay id")
