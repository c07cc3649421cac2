"""A running server as its owner watches it in the browser (issue 11): console, log, who is
playing, a crash loop, an own cfg overlay stacked and restarted into, uploads refused.

One booted host converged with site.yml (the demo world), one UI server polling it every
few seconds (UI_ENV), one server of Alice's made through the domain (the browser making one
is tests/ui/test_browser.py's), then headless Chromium does what a person does and the
tests assert what the pages show. The crash loop comes last: it leaves the server failed.
"""

from __future__ import annotations

import io
import re
import secrets
import time
import zipfile
from pathlib import Path

import pytest

from left4me_ui import accounts, blueprints, jobs, servers
from tests.ui import steam_standin
from tests.ui.browser_helpers import (
    JOB_TIMEOUT_MS,
    a2s_answer,
    log_in,
    open_page,
    settle,
    snap,
    table,
    wait_for_job,
)

pytestmark = pytest.mark.testhost
pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

# The poller asks the host every few seconds, so players and crashes show within a poll or two.
UI_ENV = {"LEFT4ME_UI_POLL_SECONDS": "5"}
RUN = secrets.token_hex(3)  # words only this run can have put on the pages
HOSTNAME = f"E2E live {RUN}"
SERVER = "e2e1"
POLL_WAIT_S = 60  # a few polls, each an SSH round trip on a busy 2-core machine
# Where the demo world's hosts find the Steam Web API (inventories/demo group_vars:
# overlays_workshop_api_url is our end of the host's veth, this port).
WEBAPI_PORT = 8880


def _finish(core, actor, job_id: int) -> jobs.Job:
    deadline = time.monotonic() + JOB_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        job = jobs.get(core, actor, job_id)
        if job.finished:
            log = "\n".join(e.text for e in jobs.events(core, actor, job_id))
            assert job.state == jobs.SUCCEEDED, f"{job.error}\n{log[-3000:]}"
            return job
        time.sleep(1)
    pytest.fail(f"job {job_id} did not finish within {JOB_TIMEOUT_MS / 1000:.0f} s")


@pytest.fixture(scope="module")
def alice_server(ui, people, booted_host):
    """Alice's running server (made through the domain, run by the UI's own worker); deleted
    at the end so its port is free for other modules' servers on the shared host."""
    _url, core = ui
    alice = accounts.login(core, "alice", people["alice"], client="test").actor
    blueprint = blueprints.create(core, alice, "e2e", ["demo-config"],
                                  blueprints.BlueprintSettings(hostname=HOSTNAME, maxplayers=8))
    server_id, job_id = servers.create(core, alice, SERVER, booted_host.name, blueprint.id)
    _finish(core, alice, job_id)
    yield servers.get(core, alice, server_id)
    _finish(core, alice, servers.delete(core, alice, server_id, SERVER))


@pytest.fixture(scope="module")
def alice_page(ui, people, browser):
    url, _core = ui
    page = log_in(browser, url, "alice", people["alice"])
    yield page
    page.context.close()


def run_in_console(page, command: str) -> str:
    """Type one command into the console, run it, and return the text of its answer (the
    monospace block under the "] command" line; the log panel is the page's last block)."""
    page.get_by_label("Command", exact=True).fill(command)
    page.get_by_role("button", name="Run").click()
    page.get_by_text(f"] {command}").wait_for()
    settle(page)
    return page.locator('[data-testid="stCode"]').first.inner_text()


def log_panel(page):
    return page.locator('[data-testid="stCode"]').last


def table_text(page, wait: bool = True) -> str:
    """What the page's tables show, a line per row, cells joined by " | ". The cells are
    painted on a canvas; the grid keeps an accessible copy of the visible ones inside it,
    filled a moment after the table appears (`wait`: for a page that has a table)."""
    if wait:
        table(page).locator('tr[role="row"]').first.wait_for(state="attached")
    return page.evaluate("""() => [...document.querySelectorAll(
        '[data-testid="stDataFrame"] tr[role="row"]')].map(
        row => [...row.children].map(cell => cell.textContent).join(" | ")).join("\\n")""")


def reload_until(page, ready, seconds: float = POLL_WAIT_S) -> None:
    """Reload the page (the poller writes, the page reads on each run) until `ready(page)`."""
    deadline = time.monotonic() + seconds
    while True:
        # A reloaded page draws from nothing: its title first, then the rest of the run.
        page.locator("h1").first.wait_for()
        settle(page)
        if ready(page):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"not shown within {seconds} s; the page said:\n"
                        f"{page.locator('body').inner_text()[-3000:]}\n"
                        f"{table_text(page, wait=False)}")
        time.sleep(2)
        page.reload()


def test_the_console_answers_status_and_the_log_shows_what_was_said(
        ui, alice_server, alice_page, shots):
    page = alice_page
    open_page(page, "Console and log")
    # Only the stand-in, asked over RCON on the host, can answer with this server's name.
    answer = run_in_console(page, "status")
    assert f"hostname: {HOSTNAME}" in answer, answer
    assert "map     : c1m1_hotel" in answer and "players : 0 humans" in answer, answer
    assert "# userid name uniqueid connected ping loss state rate" in answer, answer
    snap(page, shots / "console.png", page.get_by_text(f"hostname: {HOSTNAME}"))

    marker = f"left4me-e2e-{RUN}"
    run_in_console(page, f"say {marker}")
    said = log_panel(page).get_by_text(f"Console: {marker}")
    said.wait_for(timeout=30_000)  # the log follows the journal as it comes
    # Both went over the fast path (left4me-read, one kept SSH connection): not "slower".
    assert page.get_by_text("This console is slower here").count() == 0
    # For the photo: stop following (each refresh redraws the panel at its top), then show
    # the Log section and the panel's end, where the said line is.
    page.get_by_text("Follow (new lines show within a second").click()
    settle(page)
    page.get_by_role("heading", name="Log", exact=True).evaluate(
        "heading => heading.scrollIntoView({block: 'start'})")
    log_panel(page).evaluate("""panel => {
        for (const box of [panel, ...panel.querySelectorAll('*')])
            if (box.scrollHeight > box.clientHeight) box.scrollTop = box.scrollHeight; }""")
    snap(page, shots / "log.png", said)


def test_another_user_gets_no_console_and_no_log(ui, people, browser, alice_server):
    url, _core = ui
    bob = log_in(browser, url, "bob", people["bob"])
    try:
        open_page(bob, "Console and log")
        bob.get_by_text("You have no running servers to open a console on yet.").wait_for()
        bob.goto(f"{url}/console?server={alice_server.id}")  # a guessed id
        bob.get_by_text("You have no running servers to open a console on yet.").wait_for()
        assert bob.get_by_label("Command", exact=True).count() == 0
        assert bob.get_by_text(HOSTNAME).count() == 0
        bob.goto(f"{url}/activity?server={alice_server.id}")
        bob.get_by_text("No server of yours has run yet.").wait_for()
    finally:
        bob.context.close()


def seated(page, player: str) -> bool:
    """The Activity page shows `player` playing now, and the server's state with 1 player."""
    nobody = page.get_by_text("Nobody (bots are not counted).")
    page.get_by_text("Playing now").wait_for()
    table(page).or_(nobody).first.wait_for()  # one of the two follows the heading
    if nobody.count():
        return False
    return (player in table_text(page)
            and page.get_by_text(re.compile(r"State: running, players 1/8")).count() > 0)


def test_a_seated_player_shows_on_activity_with_ping(ui, alice_server, alice_page, shots):
    page = alice_page
    player = f"Zoey-{RUN}"
    open_page(page, "Console and log")
    # The stand-in seats a simulated human (its own console command, as a join would).
    assert f'Added "{player}"' in run_in_console(page, f"sim_addplayer {player} 57")

    open_page(page, "Activity")
    # The page shows the last poll: seen once the poller has asked the host after the join.
    reload_until(page, lambda p: seated(p, player))
    shown = table_text(page)
    assert f"{player} | 57 | " in shown, shown  # name | ping (ms) | connected
    snap(page, shots / "activity.png", page.get_by_text("Playing now"), table(page))


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def upload(page, name: str, data: bytes, into: str = "") -> None:
    page.get_by_role("tab", name="Upload").click()
    page.get_by_label("Into folder (empty: the overlay's top)").fill(into)
    page.locator(".st-key-upload_files input[type=file]").set_input_files(
        files=[{"name": name, "mimeType": "application/octet-stream", "buffer": data}])
    page.locator('[data-testid="stFileChipName"]').filter(has_text=name).wait_for()
    page.get_by_role("button", name="Upload into the overlay", exact=True).click()
    settle(page)


def upload_folder(page, folder: Path, into: str = "") -> None:
    """Choose a folder in the page's folder uploader, as a person picks one from disk."""
    page.get_by_role("tab", name="Upload").click()
    page.get_by_label("Into folder (empty: the overlay's top)").fill(into)
    page.locator(".st-key-upload_folder input[type=file]").set_input_files(str(folder))
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        page.locator('[data-testid="stFileChipName"]').filter(has_text=path.name).wait_for()
    page.get_by_role("button", name="Upload into the overlay", exact=True).click()
    settle(page)


def open_overlay(page) -> None:
    """The Overlays page on Alice's files overlay "e2e-cfg" (made here the first time)."""
    open_page(page, "Overlays")
    if page.get_by_text("You have no overlays yet.").count():
        page.get_by_label("Overlay id", exact=True).fill("e2e-cfg")
        page.get_by_role("button", name="Create overlay").click()
        page.get_by_text("Overlay created.").wait_for()
    page.get_by_role("heading", name="Contents").wait_for()


def test_a_path_traversal_and_a_zip_bomb_are_refused_on_the_page(ui, alice_server, alice_page,
                                                                  shots):
    page = alice_page
    open_overlay(page)
    before = page.get_by_text(re.compile(r"^\d+ of \d+ files and folders")).inner_text()

    upload(page, "slip.zip", _zip({"left4dead2/cfg/ok.cfg": b"sv_cheats 0\n",
                                    "../../escaped.cfg": b"sv_cheats 1\n"}))
    page.get_by_text("zip entry '../../escaped.cfg' has an empty, '.' or '..' component;"
                     " paths stay inside the overlay").wait_for()

    # 32 MiB of zeros deflate to ~32 KiB: under the file limit, a thousandfold expansion.
    upload(page, "bomb.zip", _zip({"left4dead2/maps/huge.bsp": bytes(32 * 1024 * 1024)}))
    refused = page.get_by_text(re.compile(r"zip entry 'left4dead2/maps/huge.bsp' expands"
                                          r" \d+-fold \(32.0 MiB\); refused as a zip bomb"))
    refused.wait_for()
    refused.scroll_into_view_if_needed()
    snap(page, shots / "overlay-zip-refused.png", refused)
    # Nothing of either zip is in the overlay (the zip bomb's page run shows the tree).
    assert page.get_by_text(re.compile(r"^\d+ of \d+ files and folders")).inner_text() == before
    assert "ok.cfg" not in table_text(page) and "huge.bsp" not in table_text(page)


def test_an_uploaded_cfg_stacked_on_the_server_takes_effect_after_a_restart(
        ui, alice_server, alice_page, booted_host, shots, tmp_path):
    page = alice_page
    overlay_hostname = f"E2E overlay {RUN}"
    open_overlay(page)

    # server.cfg runs at every map load, after the instance's own cfg: its hostname wins.
    # It comes as people keep it: in a folder left4dead2/cfg, the whole folder uploaded.
    cfg = tmp_path / "left4dead2" / "cfg"
    cfg.mkdir(parents=True)
    (cfg / "server.cfg").write_text(f'hostname "{overlay_hostname}"\n')
    upload_folder(page, tmp_path / "left4dead2")
    page.get_by_text("Uploaded 1 file(s).").wait_for()
    page.get_by_text(re.compile(r"^3 of \d+ files and folders")).wait_for()
    snap(page, shots / "overlay-editor.png", table(page),
         page.get_by_text("Uploaded 1 file(s)."))

    open_page(page, "Blueprints")
    form = page.locator('[data-testid="stForm"]').filter(
        has=page.get_by_role("button", name="Save changes"))
    form.get_by_role("combobox", name="Overlays (first wins)").click()
    page.get_by_role("option", name="e2e-cfg").click()  # her own overlay is offered
    page.keyboard.press("Escape")
    form.get_by_role("button", name="Save changes").click()
    page.get_by_text("Saved.").wait_for()

    open_page(page, "Servers")
    page.get_by_text("Its blueprint changed since it started: restart to apply.").wait_for()
    page.get_by_role("button", name="Restart").click()
    page.get_by_text(re.compile(r"Job \d+ \(server restart\)")).first.wait_for()
    wait_for_job(page, "server restart")
    answer = a2s_answer(booted_host.address, alice_server.port)
    assert answer is not None and answer.server_name == overlay_hostname
    page.get_by_text(f"A2S: answering as {overlay_hostname}").wait_for(timeout=30_000)


@pytest.fixture(scope="module")
def webapi(booted_host):
    """The stand-in Steam Web API where the demo world's hosts look for it, with seven
    generated add-ons (ids 1000000001..7, titled "Stand-in add-on ID"). The host is shared
    with other tests that download 1..4 into its cache; this module's test uses 5..7."""
    with steam_standin.process("--bind", booted_host.gateway, "--port", str(WEBAPI_PORT),
                               "--generate", "7") as url:
        yield url


def tables_show(page, ready) -> None:
    """Wait until the page's tables say what `ready(text)` wants: an answer is drawn a moment
    after its caption, and an earlier answer stays on the page until a new one replaces it."""
    deadline = time.monotonic() + JOB_TIMEOUT_MS / 1000
    while not ready(table_text(page, wait=False)):
        if time.monotonic() > deadline:
            pytest.fail(f"the tables did not show it; they said:\n{table_text(page, wait=False)}")
        page.wait_for_timeout(1000)
    settle(page)


def test_a_workshop_overlay_built_against_the_stand_in_shows_its_items(
        ui, alice_server, alice_page, booted_host, webapi, shots):
    page = alice_page
    open_page(page, "Overlays")
    new_id = page.get_by_label("Overlay id", exact=True)
    for _ in range(5):  # the form is open or closed by the page's history: open it
        # A closed expander keeps its form in the page, hidden or inert.
        if new_id.is_visible() and new_id.is_editable():
            break
        page.get_by_text("Create an overlay", exact=True).click()
        page.wait_for_timeout(700)
    new_id.fill("e2e-addons")
    page.get_by_text("workshop", exact=True).click()  # the Kind radio
    page.get_by_role("button", name="Create overlay").click()
    page.get_by_text("Overlay created.").wait_for()
    settle(page)
    if not page.get_by_label("Items", exact=True).is_visible():  # another overlay is shown
        page.get_by_role("combobox", name="Overlay", exact=True).click()
        page.get_by_role("option", name="e2e-addons (workshop)").click()
        settle(page)
    # Links as people paste them, and a bare id.
    page.get_by_label("Items", exact=True).fill(
        "https://steamcommunity.com/sharedfiles/filedetails/?id=1000000005\n"
        "steamcommunity.com/workshop/filedetails/?id=1000000006&searchtext=\n1000000007\n")
    page.get_by_role("button", name="Save items").click()
    page.get_by_text("Saved the Workshop items.").wait_for()
    settle(page)

    page.get_by_role("button", name="Resolve").click()
    rows = [rf"{item} \| Stand-in add-on {item} \| [\d.]+ KiB \| 20\d\d-.* \| to download"
            for item in ("1000000005", "1000000006", "1000000007")]
    tables_show(page, lambda shown: all(re.search(row, shown) for row in rows))

    page.get_by_role("button", name="Build on host").click()
    page.get_by_text(re.compile(r"Job \d+ \(overlay build\)")).first.wait_for()
    wait_for_job(page, "overlay build")
    # The host has each add-on where servers stacking the overlay find it.
    addons = booted_host.nsenter("ls", "/var/lib/left4me/overlays/e2e-addons/left4dead2/addons")
    assert sorted(addons.split()) == [f"100000000{n}.vpk" for n in (5, 6, 7)], addons
    page.get_by_role("button", name="Resolve").click()  # again: now each is in the cache
    tables_show(page, lambda shown: shown.count("| in the host's cache") == 3)
    snap(page, shots / "overlay-workshop.png", table(page))


def test_a_server_killed_until_systemd_gives_up_is_listed_as_a_crash_loop(
        ui, alice_server, alice_page, booted_host, shots):
    page = alice_page
    unit = f"left4me-server@{SERVER}.service"
    # kill -9 the server's main process each time systemd has brought it back, until the
    # unit's cap (StartLimitBurst=5 in 60 s) makes systemd give up.
    for _attempt in range(15):
        active = booted_host.nsenter("systemctl", "show", "-P", "ActiveState", unit).strip()
        if active == "failed":
            break
        if active == "active":
            pid = booted_host.nsenter("systemctl", "show", "-P", "MainPID", unit).strip()
            if pid not in ("", "0"):
                booted_host.nsenter("kill", "-9", pid, check=False)
        time.sleep(1.5)
    else:
        pytest.fail(f"{unit} was still {active} after 15 kills")

    open_page(page, "Servers")
    reload_until(page, lambda p: "crash loop: gave up after 5 starts" in table_text(p))
    assert re.search(r"e2e1 \| .* \| crash loop: gave up after 5 starts within 60 s"
                     r" \(killed by SIGKILL\) \| started \|", table_text(page)), table_text(page)
    # The status panel beside it: systemd's own words for the unit it gave up on.
    page.get_by_text("Status: failed (signal) (wanted: started)").wait_for(timeout=30_000)
    # and why, in the list's words
    page.get_by_text("Why, as the last poll saw it: crash loop: gave up after 5 starts within"
                     " 60 s (killed by SIGKILL)").wait_for(timeout=30_000)
    page.get_by_role("heading", name="Servers").scroll_into_view_if_needed()
    snap(page, shots / "servers-crash-loop.png", table(page),
         page.get_by_text("Status: failed (signal)"),
         page.get_by_text("Why, as the last poll saw it:"))
