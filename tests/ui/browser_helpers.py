"""What the browser tests share: serving the UI, logging in, waiting for a page to draw,
photographing it, waiting for a job. The fixtures built on them (ui, people, browser,
shots) are in tests/ui/conftest.py; every test module gets its own UI server and browser.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import a2s
import pytest

PROJECT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
# Pages still open when a test fails are photographed (tests/ui/conftest.py's report hook).
OPEN_PAGES: list = []
ADMIN_PASSWORD = "the admin password"
JOB_TIMEOUT_MS = 240_000
# Tall enough that a page's main parts fit one shot (Streamlit scrolls inside its own
# container, so a "full page" shot is the viewport).
VIEWPORT = {"width": 1280, "height": 1100}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serve_ui(state: Path, secret: Path, inventory: Path,
             env: Mapping[str, str] | None = None) -> Iterator[str]:
    """`streamlit run ui/asgi.py` on a free loopback port with its own state dir (and any
    further LEFT4ME_UI_* settings in `env`); yields its URL once it answers."""
    port = free_port()
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
             "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", **(env or {})})
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
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


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
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

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
