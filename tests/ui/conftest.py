"""UI test fixtures: the one domain Core of a test on a temporary state dir (the app's frame
uses it too; tests/ui/domain overrides its clock and inventory), users with real sessions,
and AppTest runs of ui/app.py signed in as one of them.

AppTest cannot send cookies, so a signed-in run carries a real session token in session
state instead (frame.TEST_TOKEN_KEY); the frame checks it against the sessions table
exactly as it checks the cookie.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import frame
import pytest
from streamlit.testing.v1 import AppTest

from left4me_ui import accounts, boot, settings
from left4me_ui.authz import Actor
from left4me_ui.core import Core
from left4me_ui.inventory import Inventory
from tests.ui import browser_helpers

UI = Path(__file__).resolve().parents[2] / "ui"
PASSWORD = "correct horse battery"

PAGE_INVENTORY = Inventory({
    "alpha": {"ansible_host": "192.0.2.10", "overlays_list": [
        {"id": "demo-config", "kind": "files", "users_may_stack": True},
        {"id": "demo-coop", "kind": "files"}]},
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
    # Reads go through runner.run_module, which tests fake (the fake inventory's hosts do
    # not exist); the fast path over SSH is turned on by the tests of host_reads.
    return settings.Settings(state_dir=tmp_path / "state", secret_file=secret,
                             inventory=tmp_path / "inventory.yml", fast_reads=False)


@pytest.fixture
def core(config: settings.Settings, clock: Callable[[], float], core_inventory: Inventory,
         monkeypatch: pytest.MonkeyPatch) -> Core:
    """The one Core of a test on a temporary state dir; it is also the frame's process-wide
    Core, so every page the test runs sees it."""
    opened = boot.open_core(config, clock=clock, inventory_loader=lambda _path: core_inventory)
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
    for number, page in enumerate(browser_helpers.OPEN_PAGES):
        if not page.is_closed():
            page.screenshot(path=shots / f"failed-{item.name}-{number}.png", full_page=True)


# --- the browser tests' fixtures (one UI server and one browser per test module) -----------


@pytest.fixture(scope="module")
def ui(demo_inventory: Path, tmp_path_factory: pytest.TempPathFactory,
       request: pytest.FixtureRequest) -> Iterator[tuple[str, Core]]:
    """The UI server (its own state dir, port and worker) on the demo world's converged
    host, and a Core on the same database. A module's UI_ENV adds LEFT4ME_UI_* settings."""
    state = tmp_path_factory.mktemp("ui-state")
    secret = state / "secret"
    settings.write_new_secret(secret)
    env = getattr(request.module, "UI_ENV", {})
    with browser_helpers.serve_ui(state, secret, demo_inventory, env) as url:
        config = settings.Settings(state_dir=state / "ui", secret_file=secret,
                                   inventory=demo_inventory)
        yield url, boot.open_core(config)


@pytest.fixture(scope="module")
def people(ui) -> dict[str, str]:
    """Alice and Bob, made by the admin (the bootstrap admin of this UI's first start)."""
    _url, core = ui
    admin = accounts.login(core, "admin", browser_helpers.ADMIN_PASSWORD, client="test").actor
    for name in ("alice", "bob"):
        accounts.create_user(core, admin, name, PASSWORD)
    return {"alice": PASSWORD, "bob": PASSWORD}


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's chromium, headless, driven by Playwright (never a downloaded browser)."""
    if not Path(browser_helpers.CHROMIUM).exists():
        pytest.skip(f"{browser_helpers.CHROMIUM} is missing: apt-get install chromium"
                    " (scripts/bootstrap.sh)")
    playwright = pytest.importorskip("playwright.sync_api",
                                     reason="playwright is not installed")
    with playwright.sync_playwright() as driver:
        # Chromium's own sandbox needs user namespaces or a setuid helper and refuses to
        # start as root; the tests run as root (they boot systemd hosts), so it is off here.
        launched = driver.chromium.launch(executable_path=browser_helpers.CHROMIUM,
                                          chromium_sandbox=False)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def shots() -> Iterator[Path]:
    """Where the pages are photographed: docs/screenshots/ (the README shows them), or
    LEFT4ME_SCREENSHOTS; printed at the end of the module."""
    directory = Path(os.environ.get("LEFT4ME_SCREENSHOTS")
                     or browser_helpers.PROJECT / "docs/screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    yield directory
    print(f"\nUI screenshots of this run: {directory}", file=sys.__stderr__, flush=True)
