"""Domain-layer fixtures: the Core of tests/ui/conftest.py with a fake clock and a fixed
inventory, cheap password hashing, users as Actors."""

from __future__ import annotations

import pytest
from domain_helpers import FAKE_INVENTORY, Clock, RecordingHasher, make_user

from left4me_ui import accounts
from left4me_ui.authz import Actor
from left4me_ui.core import Core
from left4me_ui.inventory import Inventory


@pytest.fixture(autouse=True)
def cheap_hasher(monkeypatch: pytest.MonkeyPatch) -> RecordingHasher:
    hasher = RecordingHasher()
    monkeypatch.setattr(accounts, "_hasher", hasher)
    monkeypatch.setattr(accounts, "_DUMMY_HASH", hasher.hash("nobody knows this"))
    return hasher


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def core_inventory() -> Inventory:
    return FAKE_INVENTORY


@pytest.fixture
def admin(core: Core) -> Actor:
    return make_user(core, "root-admin", "admin")


@pytest.fixture
def alice(core: Core) -> Actor:
    return make_user(core, "alice")


@pytest.fixture
def bob(core: Core) -> Actor:
    return make_user(core, "bob")
