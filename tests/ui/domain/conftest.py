"""Domain-layer fixtures: a Core on a temporary state dir, a fake clock, a fixed inventory."""

from __future__ import annotations

from pathlib import Path

import pytest
from domain_helpers import FAKE_INVENTORY, Clock, RecordingHasher, make_user

from left4me_ui import accounts, settings
from left4me_ui.authz import Actor
from left4me_ui.core import Core


@pytest.fixture(autouse=True)
def cheap_hasher(monkeypatch: pytest.MonkeyPatch) -> RecordingHasher:
    hasher = RecordingHasher()
    monkeypatch.setattr(accounts, "_hasher", hasher)
    monkeypatch.setattr(accounts, "_DUMMY_HASH", hasher.hash("nobody knows this"))
    return hasher


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


@pytest.fixture
def admin(core: Core) -> Actor:
    return make_user(core, "root-admin", "admin")


@pytest.fixture
def alice(core: Core) -> Actor:
    return make_user(core, "alice")


@pytest.fixture
def bob(core: Core) -> Actor:
    return make_user(core, "bob")


