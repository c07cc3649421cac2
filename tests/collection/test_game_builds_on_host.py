"""Game updates beside running servers, on a host converged with the demo world
(tests/conftest.py): coop1 and versus1 run on the simulated srcds, steamcmd is the stand-in,
steered through its control file (a new build: STEAMCMD_SIM_BUILDID's key; a failing
download: its `fault` knob).

An update runs as an operator runs it, `site.yml --tags game_host_update`. What a running
server sees is read from inside its own unit's mount namespace (`nsenter -t MAINPID -m`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from testhosts import host

pytestmark = pytest.mark.testhost

PROJECT = Path(__file__).resolve().parents[2]
STATE = "/var/lib/left4me"
CONTROL = f"{STATE}/steam/standin-control.json"
STEAM_INF = "left4dead2/steam.inf"


@pytest.fixture(scope="module")
def demo(request: pytest.FixtureRequest) -> tuple[host.TestHost, Path]:
    """The session's converged demo host; LEFT4ME_BUILDS_HOST=NAME:INVENTORY_DIR reuses a host
    an earlier session converged."""
    reuse = os.environ.get("LEFT4ME_BUILDS_HOST")
    if reuse:
        name, inventory = reuse.split(":", 1)
        return host.load(name), Path(inventory)
    return request.getfixturevalue("booted_host"), request.getfixturevalue("demo_inventory")


@pytest.fixture(scope="module")
def steamcmd_control(demo):
    """`set(**knobs)` writes the stand-in's control file; the original comes back at the end."""
    booted, _inventory = demo
    before = booted.nsenter("sh", "-c", f"cat {CONTROL} 2>/dev/null || true")

    def write(**knobs) -> None:
        booted.nsenter("sh", "-c", f"printf '%s' '{json.dumps(knobs)}' > {CONTROL}")

    yield write
    if before:
        booted.nsenter("sh", "-c", f"printf '%s' '{before}' > {CONTROL}")
    else:
        booted.nsenter("rm", "-f", CONTROL)


def update(demo) -> subprocess.CompletedProcess[str]:
    """site.yml --tags game_host_update, as an operator (or a schedule) runs it."""
    _booted, inventory = demo
    return subprocess.run(
        ["ansible-playbook", "-i", str(inventory), "--tags", "game_host_update",
         "playbooks/site.yml"], cwd=PROJECT, capture_output=True, text=True, check=False,
        timeout=900, env={**os.environ, "ANSIBLE_CONFIG": str(PROJECT / "ansible.cfg"),
                          "ANSIBLE_NOCOLOR": "1",
                          "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})


def current_build(booted) -> str:
    return booted.nsenter("readlink", "-f", f"{STATE}/installation").strip()


def build_dirs(booted) -> list[str]:
    return sorted(booted.nsenter("sh", "-c", f"ls -d {STATE}/builds/[0-9]*").split())


def tree_state(booted, path: str) -> str:
    """Every file's path, size, mode, mtime and ctime under path: any write changes it."""
    return booted.nsenter("sh", "-c", f"find {path}/ -printf '%P %s %m %T@ %C@\\n' | sort"
                          " | sha256sum")


def server_view(booted, name: str) -> tuple[str, str]:
    """(steam.inf, a listing of every file) as the running server sees its game tree."""
    pid = booted.nsenter("systemctl", "show", "-P", "MainPID",
                         f"left4me-server@{name}.service").strip()
    assert pid not in ("", "0"), f"{name} is not running"
    merged = f"{STATE}/runtime/{name}/merged"
    steam_inf = booted.nsenter("nsenter", "-t", pid, "-m", "cat", f"{merged}/{STEAM_INF}")
    listing = booted.nsenter("nsenter", "-t", pid, "-m", "sh", "-c",
                             f"find {merged}/ -path {merged}/left4dead2/cfg -prune -o"
                             " -printf '%P %s %m %T@\\n' | sort | sha256sum")
    return steam_inf, listing


def revision(steam_inf: str) -> int:
    for line in steam_inf.splitlines():
        if line.startswith("SourceRevision="):
            return int(line.split("=", 1)[1])
    raise AssertionError(f"no SourceRevision in {steam_inf!r}")


def restart(booted, name: str) -> None:
    unit = f"left4me-server@{name}.service"
    booted.nsenter("systemctl", "reset-failed", unit, check=False)
    booted.nsenter("systemctl", "restart", unit)


def test_an_update_installs_beside_running_servers_and_old_builds_go_once_unused(
        demo, steamcmd_control):
    booted, _inventory = demo
    for name in ("coop1", "versus1"):  # both run on the current build (what a start mounts)
        restart(booted, name)
    running = current_build(booted)
    assert running.startswith(f"{STATE}/builds/"), running
    coop_before = server_view(booted, "coop1")
    versus_before = server_view(booted, "versus1")
    build_before = tree_state(booted, running)
    old_revision = revision(coop_before[0])
    assert revision(versus_before[0]) == old_revision

    steamcmd_control(buildid=old_revision + 1)
    result = update(demo)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]

    new = current_build(booted)
    assert new != running and new.startswith(f"{STATE}/builds/")
    assert revision(booted.nsenter("cat", f"{new}/{STEAM_INF}")) == old_revision + 1
    # Both servers still see exactly the files they started with; their build was not written.
    assert server_view(booted, "coop1") == coop_before
    assert server_view(booted, "versus1") == versus_before
    assert tree_state(booted, running) == build_before
    assert running in build_dirs(booted), "versus1 and coop1 still run on it"

    # A restart picks up the new build; the old one stays while versus1 runs on it.
    restart(booted, "coop1")
    assert revision(server_view(booted, "coop1")[0]) == old_revision + 1
    assert revision(server_view(booted, "versus1")[0]) == old_revision
    again = update(demo)  # nothing new from Steam: no new build, but the sweep runs
    assert again.returncode == 0, again.stdout[-3000:]
    assert build_dirs(booted) == sorted([running, new])

    restart(booted, "versus1")
    assert revision(server_view(booted, "versus1")[0]) == old_revision + 1
    sweep = update(demo)
    assert sweep.returncode == 0, sweep.stdout[-3000:]
    assert build_dirs(booted) == [new], "no mount uses the old build: it is gone"
    assert current_build(booted) == new


def test_a_failing_steamcmd_leaves_the_current_build_current_and_untouched(
        demo, steamcmd_control):
    booted, _inventory = demo
    current = current_build(booted)
    before = tree_state(booted, current)
    coop_before = server_view(booted, "coop1")
    steamcmd_control(buildid=revision(booted.nsenter("cat", f"{current}/{STEAM_INF}")) + 7,
                     fault="timeout")
    result = update(demo)
    assert result.returncode != 0
    said = " ".join(result.stdout.split())  # the YAML callback folds long messages
    assert "error_kind: network" in said and "state is 0x602 after update job" in said
    assert f"the current build {current} stays current and unchanged" in said
    assert current_build(booted) == current
    assert tree_state(booted, current) == before
    assert build_dirs(booted) == [current], "the failed build was removed"
    assert server_view(booted, "coop1") == coop_before
    restart(booted, "coop1")  # and a start after the failure still mounts the current build
    assert server_view(booted, "coop1")[0] == coop_before[0]
