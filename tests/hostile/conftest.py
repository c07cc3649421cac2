"""One booted host for the whole hostile-tenant suite, converged with site.yml, with Alice's
and Mallory's servers made through the UI's domain (hostile_world.py says what each runs).

The host is this suite's own (not the session's `booted_host`): the attacks leave it in a
state no other test should inherit.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from hostile_world import (
    ALICE_HOSTNAME,
    ALICE_SCRIPT,
    ALICE_SECRET,
    ALICE_SECRET_CFG,
    KIT_SCRIPT,
    World,
    alice_instance_cfg,
    create_server,
    link_script,
    make_blueprint,
)

from left4me_ui import accounts, boot, overlays, settings
from left4me_ui.authz import Actor
from left4me_ui.core import Core
from left4me_ui.overlays.kinds import script as overlay_script
from left4me_ui.runner import load_inventory
from testhosts import host
from testhosts.pytest_report import report_on
from tests.conftest import _need_root_and_nspawn, run_site, write_demo_inventory

PASSWORD = "correct horse battery"


def _user(core: Core, name: str, role: str = "user") -> Actor:
    with core.db.connect() as conn:
        accounts._insert_user(conn, core.clock(), name, accounts.hash_password(PASSWORD), role)
    return accounts.login(core, name, PASSWORD, client="127.0.0.1").actor


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    _need_root_and_nspawn()
    started = time.monotonic()
    booted = host.create(host.unique_name("hx"))
    report_on(booted)
    try:
        inventory = write_demo_inventory(booted, tmp_path_factory.mktemp("hostile-inventory"))
        converge = run_site(inventory)
        assert converge.returncode == 0, converge.stdout[-4000:] + converge.stderr[-2000:]
        state = tmp_path_factory.mktemp("hostile-ui")
        settings.write_new_secret(state / "secret")
        core = boot.open_core(settings.Settings(state_dir=state / "state",
                                                secret_file=state / "secret",
                                                inventory=inventory),
                              inventory_loader=load_inventory)
        world = World(booted, core, _user(core, "alice"), _user(core, "mallory"),
                      _user(core, "hostile-admin", "admin"))
        _alice(world)
        _mallory(world)
        print(f"hostile world ready in {time.monotonic() - started:.0f} s")
        yield world
    finally:
        host.destroy(booted.name)


def _alice(world: World) -> None:
    core, alice = world.core, world.alice
    overlays.create(core, alice, "alice-files")
    overlays.write_text(core, alice, "alice-files", ALICE_SECRET_CFG, f"sv_tags {ALICE_SECRET}\n")
    overlay_script.create(core, alice, "alice-maps")
    overlay_script.save(core, alice, "alice-maps", ALICE_SCRIPT)
    blueprint = make_blueprint(world, alice, "alice coop", ["alice-files", "alice-maps",
                                                           "demo-config"], ALICE_HOSTNAME)
    create_server(world, alice, "alice", blueprint)
    world.host.nsenter("test", "-f", alice_instance_cfg())  # where the attacks aim


def _mallory(world: World) -> None:
    core, mallory = world.core, world.mallory
    overlay_script.create(core, mallory, "mallory-kit")
    overlay_script.save(core, mallory, "mallory-kit", KIT_SCRIPT)
    kit = make_blueprint(world, mallory, "kit", ["mallory-kit", "demo-config"],
                         "Mallory's server")
    create_server(world, mallory, "mallory", kit)
    world.wait_for_agent("mallory")
    overlay_script.create(core, mallory, "mallory-link")
    overlay_script.save(core, mallory, "mallory-link",
                        link_script(f'ln -s {alice_instance_cfg()} "$CFG"'))
    linked = make_blueprint(world, mallory, "linked", ["mallory-link", "mallory-kit",
                                                       "demo-config"], "Mallory's linked server")
    create_server(world, mallory, "mallory-link", linked)
    world.wait_for_agent("mallory-link")
