"""The log panel's follower on a host converged with site.yml: a line said in a server's
console shows in the followed buffer within a second, over the kept SSH connection and
left4me-read's follow stream; a page closing (nobody looks) ends the stream on the host,
journalctl with it; a killed SSH master is recovered and the lines go on.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from left4me_ui import accounts, blueprints, boot, host_reads, jobs, live, log_follow, servers
from left4me_ui import settings as settings_module
from left4me_ui.runner import ssh_control_dir
from testhosts import host

pytestmark = pytest.mark.testhost
GOAL_SECONDS = 1.0  # README Benchmarks P9: a new journal line in the open panel within 1 s


@pytest.fixture(scope="module")
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A Core on the demo world's host (fast reads on, the default), an owner and one
    running server of hers; deleted at the end. LEFT4ME_READS_HOST=NAME:INVENTORY_DIR reuses
    a host an earlier session converged (as tests/collection/test_reads_on_host.py)."""
    reuse = os.environ.get("LEFT4ME_READS_HOST")
    if reuse:
        name, inventory = reuse.split(":", 1)
        booted, inventory = host.load(name), Path(inventory)
    else:
        booted = request.getfixturevalue("booted_host")
        inventory = request.getfixturevalue("demo_inventory")
    state = tmp_path_factory.mktemp("log-follow")
    settings_module.write_new_secret(state / "secret")
    core = boot.open_core(settings_module.Settings(
        state_dir=state / "ui", secret_file=state / "secret", inventory=inventory))
    with core.db.connect() as conn:
        accounts._insert_user(conn, core.clock(), "dana",
                              accounts.hash_password("log follow password"), "user")
    dana = accounts.login(core, "dana", "log follow password", client="test").actor
    recipe = blueprints.create(core, dana, "follow", ["demo-config"],
                               blueprints.BlueprintSettings(hostname="Dana follows"))
    server_id, _job = servers.create(core, dana, "dana1", booted.name, recipe.id)
    _run_jobs(core)
    yield core, dana, server_id, booted
    log_follow.FOLLOWERS.stop_all()
    servers.delete(core, dana, server_id, "dana1")
    _run_jobs(core)


def _run_jobs(core) -> None:
    while (job := jobs.run_next(core)) is not None:
        assert job.state == jobs.SUCCEEDED, job.error


def _follower(core, booted) -> log_follow.Follower:
    target = host_reads.target_of(core, booted.name)
    return log_follow.FOLLOWERS.get((target, ssh_control_dir(core.settings.state_dir), "dana1"))


def _following(core, dana, server_id, timeout: float = 30) -> log_follow.LogView:
    """Look as the panel does until the stream is open and brought the tail."""
    deadline = time.monotonic() + timeout
    view = live.follow_log(core, dana, server_id)
    while not (view.connected and view.lines) and time.monotonic() < deadline:
        time.sleep(0.05)
        view = live.follow_log(core, dana, server_id)
    assert view.connected and view.lines, view
    return view


def said_at(core, dana, server_id, marker: str, timeout: float = 10) -> tuple[float, float]:
    """Say `marker` in the console, then look (as the panel, every 10 ms) until the line is
    in the buffer: (journal's time of the line, when the buffer had it), wall clock (the
    host's journal and this machine share one kernel clock)."""
    live.run_console(core, dana, server_id, f"say {marker}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = live.follow_log(core, dana, server_id)
        found = [line for line in view.lines if f"Console: {marker}" in line]
        if found:
            return log_follow.line_time(found[0]), time.time()
        time.sleep(0.01)
    raise AssertionError(f"{marker} never showed: {view}")


def on_host(booted, pattern: str) -> list[str]:
    """The host's processes whose command line matches `pattern` (pgrep -f)."""
    return booted.nsenter("pgrep", "-af", pattern, check=False).splitlines()


def test_a_line_said_in_the_console_shows_through_the_follower_within_a_second(world):
    core, dana, server_id, booted = world
    _following(core, dana, server_id)
    took = []
    for n in range(5):
        journal_time, seen = said_at(core, dana, server_id, f"follow-{os.getpid()}-{n}")
        took.append(seen - journal_time)
    print("journal line -> buffer, s:", [round(t, 3) for t in took])
    assert max(took) < GOAL_SECONDS, took
    # One stream did it all: one left4me-read and one journalctl following this server.
    assert len(on_host(booted, "journalctl --unit=left4me-server@dana1.service")) == 1


def test_nobody_looking_ends_the_stream_on_the_host(world):
    core, dana, server_id, booted = world
    _following(core, dana, server_id)
    follower = _follower(core, booted)
    assert on_host(booted, "journalctl --unit=left4me-server@dana1.service")
    follower.idle_seconds = 0.5  # the page closed: nobody looks from now on
    follower.join(10)
    assert not follower.running
    deadline = time.monotonic() + 5
    while (left := on_host(booted, "left4me-read|journalctl --unit=left4me-server@dana1")) \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left == [], left


def _master_pid(core, booted) -> int | None:
    target = host_reads.target_of(core, booted.name)
    check = subprocess.run(
        host_reads.ssh_argv(target, ssh_control_dir(core.settings.state_dir), remote=(),
                            options=("-O", "check")), capture_output=True, text=True,
        check=False)
    found = re.search(r"pid=(\d+)", check.stderr)
    return int(found.group(1)) if found else None


def test_a_killed_master_is_recovered_and_the_lines_go_on(world):
    core, dana, server_id, booted = world
    _following(core, dana, server_id)
    said_at(core, dana, server_id, f"before-kill-{os.getpid()}")
    pid = _master_pid(core, booted)
    assert pid, "no master while following"
    os.kill(pid, signal.SIGKILL)
    journal_time, seen = said_at(core, dana, server_id, f"after-kill-{os.getpid()}", 20)
    assert seen - journal_time < 10
    assert _master_pid(core, booted) not in (None, pid)
    view = live.follow_log(core, dana, server_id)
    marked = [line for line in view.lines
              if re.search(rf"Console: (before|after)-kill-{os.getpid()}$", line)]
    assert len(marked) == 2, marked  # each once: resumed after the cursor, nothing twice
    deadline = time.monotonic() + 5
    while len(followers := on_host(booted, "journalctl --unit=left4me-server@dana1")) > 1 \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(followers) == 1, followers  # the lost stream's journalctl ended on the host
