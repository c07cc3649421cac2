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

import re

import pytest

from left4me_ui import accounts, servers
from tests.ui.browser_helpers import (
    ADMIN_PASSWORD,
    JOB_TIMEOUT_MS,
    a2s_answer,
    log_in,
    open_page,
    snap,
    table,
    wait_for_job,
)

pytestmark = pytest.mark.testhost
pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


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
