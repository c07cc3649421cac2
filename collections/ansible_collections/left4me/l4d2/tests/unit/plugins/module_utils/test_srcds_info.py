# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Tests for module_utils/_srcds_info.py: why a server is not running, from the properties
systemd 257 shows for the game unit in each situation, and what a host does not account."""

from __future__ import annotations

import pathlib
import sys

import pytest

try:
    from ansible_collections.left4me.l4d2.plugins.module_utils import _srcds_info
except ImportError:  # plain pytest from the repo root: make the collection importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))
    from ansible_collections.left4me.l4d2.plugins.module_utils import _srcds_info

BASE = {
    "Id": "left4me-server@coop1.service", "LoadState": "loaded", "UnitFileState": "enabled",
    "NRestarts": "0", "MemoryCurrent": "183500800", "CPUUsageNSec": "12500000000",
    "ExecMainCode": "0", "ExecMainStatus": "0", "StartLimitBurst": "5",
    "StartLimitIntervalUSec": "1min", "Result": "success",
}


def props(**changes: str) -> dict[str, str]:
    return {**BASE, **changes}


RUNNING = props(ActiveState="active", SubState="running")
# Five SIGSEGVs within a minute: systemd stops restarting.
CRASH_LOOP = props(ActiveState="failed", SubState="failed", Result="start-limit-hit",
                   ExecMainCode="2", ExecMainStatus="11", NRestarts="4")
# ExecStartPre (the overlay mount) refused: the main process never ran.
MOUNT_REFUSED_JOURNAL = [
    "left4me-mount: mount coop1: /var/lib/left4me/overlays/gone does not exist",
    "left4me-server@coop1.service: Control process exited, code=exited, status=1/FAILURE",
    "left4me-server@coop1.service: Failed with result 'exit-code'.",
]


# What systemd 257 logged on a test host for five SIGKILLs of the server within a minute: the
# Result stays 'signal', and ExecStopPost, killed with the cgroup, is a "Control process".
SIGKILL_LOOP_JOURNAL = [
    "left4me-server@versus1.service: Main process exited, code=killed, status=9/KILL",
    "left4me-server@versus1.service: Control process exited, code=killed, status=9/KILL",
    "left4me-server@versus1.service: Failed with result 'signal'.",
    "left4me-server@versus1.service: Scheduled restart job, restart counter is at 6.",
    "left4me-server@versus1.service: Start request repeated too quickly.",
    "left4me-server@versus1.service: Failed with result 'signal'.",
    "Failed to start left4me-server@versus1.service - Left 4 Dead 2 server versus1 (left4me).",
]


@pytest.mark.parametrize("unit, journal, state, reason", [
    (props(ActiveState="failed", SubState="failed", Result="signal", ExecMainCode="2",
           ExecMainStatus="9", NRestarts="5"), SIGKILL_LOOP_JOURNAL, "crash_loop",
     "crash loop: gave up after 5 starts within 60 s (killed by SIGKILL)"),
    (RUNNING, [], "running", "running"),
    (props(ActiveState="active", SubState="running", NRestarts="2"), [], "running",
     "running (restarted 2 times)"),
    (CRASH_LOOP, [], "crash_loop",
     "crash loop: gave up after 5 starts within 60 s (killed by SIGSEGV)"),
    (props(ActiveState="failed", SubState="failed", Result="start-limit-hit"),
     MOUNT_REFUSED_JOURNAL, "crash_loop",
     "crash loop: gave up after 5 starts within 60 s (failed at start)"),
    (props(ActiveState="failed", SubState="failed", Result="start-limit-hit",
           StartLimitIntervalUSec="1min 30s", ExecMainCode="2", ExecMainStatus="9"),
     ["left4me-server@coop1.service: A process of this unit has been killed by the OOM"
      " killer."], "crash_loop",
     "crash loop: gave up after 5 starts within 90 s (out of memory)"),
    (props(ActiveState="failed", SubState="failed", Result="oom-kill"), [], "oom_killed",
     "killed: out of memory"),
    (props(ActiveState="inactive", SubState="dead", Result="oom-kill",
           UnitFileState="disabled"), [], "oom_killed", "killed: out of memory"),
    (props(ActiveState="failed", SubState="failed", Result="exit-code"),
     MOUNT_REFUSED_JOURNAL, "failed_at_start",
     "failed at start (before the server ran: see the journal)"),
    (props(ActiveState="failed", SubState="failed", Result="exit-code", ExecMainCode="1",
           ExecMainStatus="1"), [], "failed", "failed: exited with status 1"),
    (props(ActiveState="failed", SubState="failed", Result="core-dump", ExecMainCode="3",
           ExecMainStatus="6"), [], "failed", "failed: killed by SIGABRT (core dumped)"),
    (props(ActiveState="activating", SubState="auto-restart", Result="signal",
           ExecMainCode="2", ExecMainStatus="11", NRestarts="1"), [], "restarting",
     "restarting after killed by SIGSEGV (restart 2)"),
    (props(ActiveState="activating", SubState="start-pre"), [], "starting", "starting"),
    (props(ActiveState="deactivating", SubState="stop-sigterm"), [], "stopping", "stopping"),
    (props(ActiveState="inactive", SubState="dead", UnitFileState="disabled"), [], "stopped",
     "stopped"),
    (props(ActiveState="inactive", SubState="dead"), [], "stopped_outside_left4me",
     "stopped outside left4me (the unit is still enabled: stopped by hand, or the server quit"
     " on its own)"),
    (props(LoadState="not-found", ActiveState="inactive", SubState="dead"), [],
     "not_installed", "the unit template is not installed (role left4me.l4d2.game_instances)"),
])
def test_what_a_person_reads_for_each_situation(unit, journal, state, reason):
    found = _srcds_info.classify(unit, journal)
    assert (found.state, found.reason) == (state, reason)
    assert found.running is (state == "running")


@pytest.mark.parametrize("active", ["activating", "deactivating", "failed", "inactive",
                                    "reloading", "maintenance", ""])
def test_never_running_unless_the_process_runs(active):
    assert not _srcds_info.classify(props(ActiveState=active, SubState="running")).running


@pytest.mark.parametrize("memory, cpu, not_accounted", [
    ("183500800", "12500000000", []),
    ("[not set]", "12500000000", ["memory"]),
    ("18446744073709551615", "18446744073709551615", ["memory", "cpu"]),
    ("", "[not set]", ["memory", "cpu"]),
])
def test_memory_and_cpu_or_what_the_host_does_not_account(memory, cpu, not_accounted):
    info = _srcds_info.instance_info(
        "coop1", {"LEFT4ME_PORT": "27015", "LEFT4ME_IP": "0.0.0.0"},
        props(ActiveState="active", SubState="running", MemoryCurrent=memory, CPUUsageNSec=cpu),
        True, "/var/lib/left4me/runtime/coop1/merged")
    assert info.not_accounted == not_accounted
    assert info.memory_bytes == (None if "memory" in not_accounted else 183500800)
    assert info.cpu_seconds == (None if "cpu" in not_accounted else 12.5)
    assert (info.port, info.running, info.journal) == (27015, True, [])


def test_the_journal_is_kept_only_for_a_server_that_is_not_running():
    info = _srcds_info.instance_info("coop1", {}, CRASH_LOOP, False, "/m", ["Segmentation fault"])
    assert info.journal == ["Segmentation fault"] and info.port is None
    assert _srcds_info.instance_info("coop1", {}, RUNNING, True, "/m", ["x"]).journal == []
    lines = [f"line {i}" for i in range(30)]
    assert _srcds_info.instance_info("c", {}, CRASH_LOOP, False, "/m", lines, 3).journal == [
        "line 27", "line 28", "line 29"]
    assert _srcds_info.instance_info("c", {}, CRASH_LOOP, False, "/m", lines, 0).journal == []


def test_systemctl_show_of_several_units():
    text = ("Id=left4me-server@a.service\nActiveState=active\n\n"
            "Id=left4me-server@b.service\nActiveState=failed\nResult=start-limit-hit\n")
    shown = _srcds_info.parse_show(text)
    assert shown["left4me-server@b.service"]["Result"] == "start-limit-hit"
    assert shown["left4me-server@a.service"]["ActiveState"] == "active"


@pytest.mark.parametrize("text, seconds", [("1min", 60), ("10s", 10), ("2min 5s", 125),
                                           ("", None), ("infinity", None)])
def test_start_limit_interval(text, seconds):
    assert _srcds_info.interval_seconds(text) == seconds


def test_the_host_reaches_a_server_on_every_address_over_loopback():
    assert _srcds_info.probe_address("0.0.0.0") == "127.0.0.1"
    assert _srcds_info.probe_address(None) == "127.0.0.1"
    assert _srcds_info.probe_address("169.254.77.2") == "169.254.77.2"


def test_configured_names(tmp_path):
    for entry in ("b.env", "a.env", "notes.txt", ".env"):
        (tmp_path / entry).write_text("")
    assert _srcds_info.configured_names(str(tmp_path)) == ["a", "b"]
    assert _srcds_info.configured_names(str(tmp_path / "missing")) == []
