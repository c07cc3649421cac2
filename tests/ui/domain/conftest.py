"""Domain-layer fixtures: a Core on a temporary state dir, a fake clock, a fixed inventory."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from left4me_ui import accounts, settings
from left4me_ui.authz import Actor
from left4me_ui.core import Core
from left4me_ui.inventory import Inventory

PASSWORD = "correct horse battery"


class Clock:
    """A clock tests move by hand (sessions, throttle, retention)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


FAKE_INVENTORY = Inventory({
    "alpha": {"ansible_host": "192.0.2.10", "game_instances_list": [
        {"name": "coop1", "port": 27015},
        {"name": "versus1", "port": 27025, "client_port": 27026},
    ]},
    "beta": {"ansible_host": "192.0.2.11"},
})


@pytest.fixture
def config(tmp_path: Path) -> settings.Settings:
    state = tmp_path / "state"
    secret = tmp_path / "secret"
    settings.write_new_secret(secret)
    return settings.Settings(state_dir=state, secret_file=secret,
                             inventory=tmp_path / "inventory.yml")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def core(config: settings.Settings, clock: Clock) -> Core:
    opened = Core.open(config, clock=clock, inventory_loader=lambda _path: FAKE_INVENTORY)
    return opened


def make_user(core: Core, name: str, role: str = "user") -> Actor:
    """A user straight into the table (no admin needed), as an Actor."""
    with core.db.connect() as conn:
        user_id = accounts._insert_user(conn, core.clock(), name,
                                        accounts.hash_password(PASSWORD), role)
    return Actor(user_id, name, role)


@pytest.fixture
def admin(core: Core) -> Actor:
    return make_user(core, "root-admin", "admin")


@pytest.fixture
def alice(core: Core) -> Actor:
    return make_user(core, "alice")


@pytest.fixture
def bob(core: Core) -> Actor:
    return make_user(core, "bob")


def with_settings(core: Core, **changes: object) -> Core:
    core.settings = replace(core.settings, **changes)
    return core
