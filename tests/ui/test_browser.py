"""The UI as people use it: a real headless Chromium against the real server.

A booted systemd host is converged with site.yml (the demo world's settings), the UI is
served by `streamlit run ui/asgi.py` on a free loopback port with its own state dir, and
Playwright drives Debian's chromium (never a downloaded browser). Alice makes a blueprint
and a server, watches the job reach done, the server answers A2S, she restarts, stops and
deletes it; Bob sees none of it; a password change logs out her second browser. Every page
is photographed once it has drawn, into docs/screenshots/ (the README shows them; set
LEFT4ME_SCREENSHOTS to write elsewhere), and the directory is printed at the end of the run.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import a2s
import pytest

from left4me_ui import accounts, servers, settings
from left4me_ui.core import Core
from tests.ui.conftest import PASSWORD

pytestmark = pytest.mark.testhost
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
PlaywrightTimeoutError = playwright.TimeoutError

PROJECT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
# Pages still open when a test fails are photographed (tests/ui/conftest.py's report hook).
OPEN_PAGES: list = []
ADMIN_PASSWORD = "the admin password"
JOB_TIMEOUT_MS = 240_000
# Tall enough that a page's main parts fit one shot (Streamlit scrolls inside its own
# container, so a "full page" shot is the viewport).
VIEWPORT = {"width": 1280, "height": 1100}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def inventory(demo_inventory: Path) -> Path:
    """The booted host with the demo world's servers (tests/conftest.py), converged once."""
    return demo_inventory


@pytest.fixture(scope="module")
def ui(inventory, tmp_path_factory) -> Iterator[tuple[str, Core]]:
    """The UI server (its own state dir, port and worker) and a Core on the same database."""
    state = tmp_path_factory.mktemp("ui-state")
    secret = state / "secret"
    settings.write_new_secret(secret)
    port = _free_port()
    log = open(state / "ui.log", "w")  # noqa: SIM115 (open for the server's whole life)
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "ui/asgi.py", "--server.address",
         "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
         "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal"],
        cwd=PROJECT, stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "LEFT4ME_UI_STATE_DIR": str(state / "ui"),
             "LEFT4ME_UI_SECRET_FILE": str(secret), "LEFT4ME_INVENTORY": str(inventory),
             "LEFT4ME_UI_BOOTSTRAP_PASSWORD": ADMIN_PASSWORD,
             "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                    if answer.read() == b"ok":
                        break
            except OSError:
                time.sleep(0.3)
        else:
            pytest.fail(f"the UI did not start: {(state / 'ui.log').read_text()[-3000:]}")
        config = settings.Settings(state_dir=state / "ui", secret_file=secret,
                                   inventory=inventory)
        yield url, Core.open(config)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def people(ui) -> dict[str, str]:
    """Alice and Bob, made by the admin (the bootstrap admin of this UI's first start)."""
    _url, core = ui
    admin = accounts.login(core, "admin", ADMIN_PASSWORD, client="test").actor
    for name in ("alice", "bob"):
        accounts.create_user(core, admin, name, PASSWORD)
    return {"alice": PASSWORD, "bob": PASSWORD}


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (scripts/bootstrap.sh)")
    with playwright.sync_playwright() as driver:
        # Chromium's own sandbox needs user namespaces or a setuid helper and refuses to
        # start as root; the tests run as root (they boot systemd hosts), so it is off here.
        launched = driver.chromium.launch(executable_path=CHROMIUM, chromium_sandbox=False)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def shots() -> Iterator[Path]:
    directory = Path(os.environ.get("LEFT4ME_SCREENSHOTS") or PROJECT / "docs/screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    yield directory
    print(f"\nUI screenshots of this run: {directory}", file=sys.__stderr__, flush=True)


def log_in(browser, url: str, name: str, password: str):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    # generous: the test machine may be busy converging other hosts
    page.set_default_timeout(120_000)
    page.goto(url + "/")
    page.wait_for_url(url + "/login")
    page.fill("#name", name)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(url + "/")
    page.get_by_text(f"Signed in as {name}").wait_for()
    settle(page)
    OPEN_PAGES.append(page)
    return page


def open_page(page, title: str) -> None:
    page.get_by_role("link", name=title).click()
    page.get_by_role("heading", name=title).wait_for()
    settle(page)


def settle(page) -> None:
    """Wait until the app has finished its current run (Streamlit's running indicator)."""
    page.wait_for_timeout(300)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached")


def snap(page, path: Path, *ready) -> None:
    """Photograph the page once it has drawn: each of `ready` (locators of what only this
    page shows, in the state the shot is for) visible, the app's run over, no element still
    marked stale from the previous run, tables painted."""
    for locator in ready:
        locator.first.wait_for(state="visible")
    settle(page)
    page.locator('[data-stale="true"]').first.wait_for(state="detached")
    # A table is a canvas (glide-data-grid) painted a moment after its element appears.
    for table in page.locator('[data-testid="stDataFrame"] canvas').all():
        table.wait_for(state="visible")
    page.wait_for_timeout(700)
    page.screenshot(path=path)


def table(page):
    return page.locator('[data-testid="stDataFrame"]')


def wait_for_job(page, kind: str) -> None:
    """The live progress bar's text says the job of this kind succeeded."""
    try:
        page.get_by_text(re.compile(rf"Job \d+ \({kind}\): succeeded")).first.wait_for(
            timeout=JOB_TIMEOUT_MS)
    except PlaywrightTimeoutError:
        # What the user saw instead (a failed job's message, a stuck bar) is the diagnosis;
        # the failure hook (tests/ui/conftest.py) photographs the page too.
        pytest.fail(f"no 'Job N ({kind}): succeeded' within {JOB_TIMEOUT_MS / 1000:.0f} s;"
                    f" the page said:\n{page.locator('body').inner_text()[-3000:]}")


def a2s_answer(address: str, port: int) -> a2s.SourceInfo | None:
    try:
        return a2s.info((address, port), timeout=2.0)
    except (OSError, a2s.BrokenMessageError):
        return None


def test_a_user_runs_a_server_from_the_browser(ui, people, browser, booted_host, shots):
    url, core = ui
    page = log_in(browser, url, "alice", people["alice"])
    snap(page, shots / "servers-empty.png", page.get_by_text("You have no servers yet."),
         page.get_by_text("create one on Blueprints first"))

    open_page(page, "Blueprints")
    page.get_by_label("Name", exact=True).fill("coop evenings")
    page.get_by_label("Server name shown in the browser").fill("Alices coop")
    page.get_by_role("button", name="Create blueprint").click()
    snap(page, shots / "blueprints.png", page.get_by_text("Blueprint created."), table(page),
         page.get_by_text("Change or delete a blueprint"))

    open_page(page, "Servers")
    page.get_by_label("Name", exact=True).fill("alice1")
    page.get_by_role("button", name="Create server").click()
    running = page.get_by_text(re.compile(r"Job \d+ \(server create\): (queued|running)"))
    running.first.wait_for()
    page.get_by_text("Latest job").scroll_into_view_if_needed()
    # Mid-run, the progress fragment reruns every second: catch a moment it is not faded.
    page.locator('[data-stale="true"]').first.wait_for(state="detached")
    page.screenshot(path=shots / "server-job-running.png")
    wait_for_job(page, "server create")
    alice = accounts.login(core, "alice", people["alice"], client="test").actor
    [server] = servers.list_for(core, alice)
    page.get_by_text(server.connect_line).wait_for()
    answer = a2s_answer(booted_host.address, server.port)
    assert answer is not None and answer.server_name == "Alices coop"
    answering = page.get_by_text(re.compile(r"Status: running \(wanted: started\)"))
    answering.wait_for(timeout=20_000)
    page.get_by_text("systemd: active (running)").wait_for()
    page.get_by_role("heading", name="Servers").scroll_into_view_if_needed()
    snap(page, shots / "servers.png", table(page), answering)
    page.get_by_text("Latest job").scroll_into_view_if_needed()
    snap(page, shots / "server-detail.png", answering,
         page.get_by_text(re.compile(r"Job \d+ \(server create\): succeeded")))

    page.get_by_role("button", name="Restart").click()
    page.get_by_text(re.compile(r"Job \d+ \(server restart\)")).first.wait_for()
    wait_for_job(page, "server restart")
    assert a2s_answer(booted_host.address, server.port) is not None

    bob = log_in(browser, url, "bob", people["bob"])
    bob.get_by_text("You have no servers yet.").wait_for()
    bob.goto(f"{url}/?server={server.id}")  # a guessed id shows nothing either
    bob.get_by_text("You have no servers yet.").wait_for()
    open_page(bob, "Jobs")
    bob.get_by_text("No jobs yet").wait_for()
    bob.context.close()

    page.get_by_role("button", name="Stop").click()
    page.get_by_text(re.compile(r"Job \d+ \(server stop\)")).first.wait_for()
    wait_for_job(page, "server stop")
    assert a2s_answer(booted_host.address, server.port) is None

    open_page(page, "Jobs")
    snap(page, shots / "jobs.png", table(page),
         page.get_by_text(re.compile(r"Job \d+ \(server stop\): succeeded")))
    open_page(page, "Servers")
    page.get_by_text("Delete this server").click()
    page.get_by_label("Server name").fill("alice1")
    page.get_by_role("button", name="Delete server").click()
    page.get_by_text("You have no servers yet.").wait_for(timeout=JOB_TIMEOUT_MS)
    page.context.close()


def test_a_password_change_logs_out_the_other_browser(ui, people, browser, shots):
    url, _core = ui
    first = log_in(browser, url, "bob", people["bob"])
    second = log_in(browser, url, "bob", people["bob"])
    open_page(first, "Account")
    snap(first, shots / "account.png", first.get_by_role("button", name="Change password"))
    first.get_by_label("Current password").fill(people["bob"])
    first.get_by_label("New password", exact=True).fill("bobs brand new password")
    first.get_by_label("New password again").fill("bobs brand new password")
    first.get_by_role("button", name="Change password").click()
    first.get_by_text("Password changed").wait_for()
    people["bob"] = "bobs brand new password"

    second.get_by_role("link", name="Jobs").click()  # any rerun checks the session again
    second.get_by_text("not logged in").wait_for()
    second.reload()
    second.wait_for_url(url + "/login")
    second.locator("#password").wait_for()
    second.screenshot(path=shots / "login.png")
    # the first browser goes on, then logs out for real
    open_page(first, "Servers")
    first.get_by_role("button", name="Log out").click()
    first.get_by_text("not logged in").wait_for()
    first.goto(url + "/")
    first.wait_for_url(url + "/login")
    first.context.close()


def test_the_admin_pages(ui, browser, shots):
    url, _core = ui
    page = log_in(browser, url, "admin", ADMIN_PASSWORD)
    open_page(page, "Users")
    snap(page, shots / "users.png", table(page), page.get_by_text("Add a user"),
         page.get_by_text("Change a user"))
    open_page(page, "Audit")
    snap(page, shots / "audit.png", table(page), page.get_by_text("Rows"))
    open_page(page, "Hosts")
    snap(page, shots / "hosts.png", table(page),
         page.get_by_text(re.compile(r"1 of 1 hosts reachable")))
    page.context.close()
