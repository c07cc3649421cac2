"""UI test fixtures: the one domain Core of a test on a temporary state dir (the app's frame
uses it too; tests/ui/domain overrides its clock and inventory), users with real sessions,
and AppTest runs of ui/app.py signed in as one of them.

AppTest cannot send cookies, so a signed-in run carries a real session token in session
state instead (frame.TEST_TOKEN_KEY); the frame checks it against the sessions table
exactly as it checks the cookie.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import frame
import pytest
from streamlit.testing.v1 import AppTest

from left4me_ui import accounts, settings
from left4me_ui.authz import Actor
from left4me_ui.core import Core
from left4me_ui.inventory import Inventory

UI = Path(__file__).resolve().parents[2] / "ui"
PASSWORD = "correct horse battery"

PAGE_INVENTORY = Inventory({
    "alpha": {"ansible_host": "192.0.2.10", "overlays_list": [
        {"id": "demo-config", "kind": "files"}, {"id": "demo-coop", "kind": "files"}]},
})


@pytest.fixture
def clock() -> Callable[[], float]:
    """The Core's clock: real time for pages (tests/ui/domain moves a fake one by hand)."""
    return time.time


@pytest.fixture
def core_inventory() -> Inventory:
    """The inventory the Core sees instead of running ansible-inventory."""
    return PAGE_INVENTORY


@pytest.fixture
def config(tmp_path: Path) -> settings.Settings:
    secret = tmp_path / "secret"
    settings.write_new_secret(secret)
    return settings.Settings(state_dir=tmp_path / "state", secret_file=secret,
                             inventory=tmp_path / "inventory.yml")


@pytest.fixture
def core(config: settings.Settings, clock: Callable[[], float], core_inventory: Inventory,
         monkeypatch: pytest.MonkeyPatch) -> Core:
    """The one Core of a test on a temporary state dir; it is also the frame's process-wide
    Core, so every page the test runs sees it."""
    opened = Core.open(config, clock=clock, inventory_loader=lambda _path: core_inventory)
    monkeypatch.setattr(frame, "_core", opened)
    return opened


class Person:
    """A user with a live session: `.actor`, `.token`, and `.app(page)` to browse as them."""

    def __init__(self, core: Core, name: str, role: str) -> None:
        with core.db.connect() as conn:
            accounts._insert_user(conn, core.clock(), name, accounts.hash_password(PASSWORD),
                                  role)
        login = accounts.login(core, name, PASSWORD, client="127.0.0.1")
        self.actor: Actor = login.actor
        self.token = login.token

    def app(self, page: str | None = None) -> AppTest:
        """ui/app.py run as this person, then switched to pages/<page>.py if given."""
        app = AppTest.from_file(str(UI / "app.py"), default_timeout=30)
        app.session_state[frame.TEST_TOKEN_KEY] = self.token
        app.run()
        if page is not None:
            app.switch_page(f"pages/{page}.py").run()
        return app


@pytest.fixture
def admin(core: Core) -> Person:
    return Person(core, "boss", "admin")


@pytest.fixture
def alice(core: Core) -> Person:
    return Person(core, "alice", "user")


@pytest.fixture
def bob(core: Core) -> Person:
    return Person(core, "bob", "user")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed browser test leaves a photo of every page it had open, beside its shots."""
    outcome = yield
    report = outcome.get_result()
    shots = item.funcargs.get("shots") if hasattr(item, "funcargs") else None
    if report.when != "call" or not report.failed or shots is None:
        return
    for number, page in enumerate(getattr(item.module, "OPEN_PAGES", [])):
        if not page.is_closed():
            page.screenshot(path=shots / f"failed-{item.name}-{number}.png", full_page=True)
