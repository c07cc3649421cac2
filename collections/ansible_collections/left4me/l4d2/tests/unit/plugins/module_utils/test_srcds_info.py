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
    from ansible_collections.left4me.l4d2.plugins.module_utils import _a2s, _srcds_info
except ImportError:  # plain pytest from the repo root: make the collection importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))
    from ansible_collections.left4me.l4d2.plugins.module_utils import _a2s, _srcds_info
from ansible_collections.left4me.l4d2.plugins.module_utils import _systemd

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
    shown = _systemd.parse_show(text)
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


# --- what the srcds_info module asks and reports (it only gathers and calls these) -------

@pytest.mark.parametrize("journal_lines, a2s_timeout, rcon_timeout, problem", [
    (10, 1.0, 5.0, None),
    (0, 0.1, 0.1, None),
    (1000, 1.0, 5.0, None),
    (1001, 1.0, 5.0, "journal_lines must be between 0 and 1000"),
    (-1, 1.0, 5.0, "journal_lines must be between 0 and 1000"),
    (10, 0.0, 5.0, "a2s_timeout and rcon_timeout must be above 0"),
    (10, 1.0, -1.0, "a2s_timeout and rcon_timeout must be above 0"),
    (5000, 0.0, 0.0, "journal_lines must be between 0 and 1000"),
])
def test_bounds_srcds_info_refuses(journal_lines, a2s_timeout, rcon_timeout, problem):
    assert _srcds_info.param_problem(journal_lines, a2s_timeout, rcon_timeout) == problem


FOUND = ["Bad!", "coop1", "versus1"]  # env file names; Bad! is no name left4me writes


@pytest.mark.parametrize("found, wanted, names", [
    (FOUND, None, ["coop1", "versus1"]),
    (FOUND, ["versus1", "coop1", "versus1"], ["coop1", "versus1"]),
    (FOUND, ["versus1"], ["versus1"]),
    (FOUND, [], []),
    ([], None, []),
])
def test_which_instances_are_reported(found, wanted, names):
    assert _srcds_info.select_names(found, wanted, "/etc/left4me/instances") == names


@pytest.mark.parametrize("found, wanted, message", [
    (FOUND, ["coop1", "ghost", "zz"], "not configured on this host: ghost, zz (no"
     " /etc/left4me/instances/NAME.env); configured: coop1, versus1"),
    ([], ["coop1"], "not configured on this host: coop1 (no /etc/left4me/instances/NAME.env);"
     " configured: none"),
    (FOUND, ["Bad!"], "invalid instance name 'Bad!': use 1-64 characters"),
    (FOUND, ["ghost", "Bad!"], "invalid instance name 'Bad!'"),  # names checked first
])
def test_a_request_for_instances_not_configured_names_them(found, wanted, message):
    with pytest.raises(_srcds_info.InfoError) as refused:
        _srcds_info.select_names(found, wanted, "/etc/left4me/instances")
    assert str(refused.value).startswith(message)


@pytest.mark.parametrize("unit, read", [
    (RUNNING, False),
    (props(ActiveState="active", SubState="exited"), False),
    (CRASH_LOOP, True),
    (props(ActiveState="inactive", SubState="dead"), True),
    (props(ActiveState="activating", SubState="auto-restart"), True),
    ({"LoadState": "not-found"}, True),
])
def test_the_journal_is_read_for_a_server_that_is_not_active(unit, read):
    assert _srcds_info.needs_journal(unit) is read


@pytest.mark.parametrize("journal_lines, lines", [(0, 30), (10, 30), (30, 30), (200, 200)])
def test_the_journal_read_covers_what_classify_needs_and_what_is_returned(journal_lines,
                                                                          lines):
    assert _srcds_info.journal_argv("coop1", journal_lines) == [
        "journalctl", "--unit=left4me-server@coop1.service", "--output=json", "--no-pager",
        "--quiet", f"--lines={lines}"]


def test_systemctl_show_asks_for_the_properties_classify_reads():
    argv = _systemd.show_argv(["left4me-server@a.service", "left4me-server@b.service"],
                              _srcds_info.SHOW_PROPERTIES)
    assert argv[:2] == ["systemctl", "show"]
    assert argv[2].startswith("--property=Id,LoadState,ActiveState,SubState,Result,")
    assert argv[3:] == ["left4me-server@a.service", "left4me-server@b.service"]


@pytest.mark.parametrize("password, first", [
    ("hunter2", "stop ******** leaking"),  # the server's own password, wherever it appears
    (None, "stop hunter2 leaking"),  # no password known: only password cvars are masked
])
def test_journal_messages_mask_the_password_and_password_cvars(password, first):
    output = "\n".join([
        '{"MESSAGE": "stop hunter2 leaking"}',
        '{"MESSAGE": "rcon_password hunter2"}',
        '{"MESSAGE": [99, 97, 102, 233]}',  # journald's non-UTF-8 message: a byte list
        "not json",
        '{"MESSAGE": "  Segfault \\n"}',
    ])
    assert _srcds_info.journal_messages(output, password) == [
        first, "rcon_password ********", "caf\ufffd", "Segfault"]


def info_of(name: str, unit: dict[str, str], env: dict[str, str]) -> _srcds_info.InstanceInfo:
    return _srcds_info.instance_info(name, env, unit, True, f"/m/{name}")


def test_a2s_is_asked_of_running_servers_with_a_port_where_the_host_reaches_them():
    infos = [
        info_of("coop1", RUNNING, {"LEFT4ME_PORT": "27015", "LEFT4ME_IP": "0.0.0.0"}),
        info_of("bound", RUNNING, {"LEFT4ME_PORT": "27025", "LEFT4ME_IP": "10.0.0.5"}),
        info_of("noport", RUNNING, {"LEFT4ME_IP": "0.0.0.0"}),
        info_of("down", CRASH_LOOP, {"LEFT4ME_PORT": "27035"}),
    ]
    assert _srcds_info.a2s_targets(infos) == {"coop1": ("127.0.0.1", 27015),
                                              "bound": ("10.0.0.5", 27025)}
    assert [_srcds_info.answers_queries(i) for i in infos] == [True, True, False, False]


@pytest.mark.parametrize("answer, a2s, a2s_error", [
    ({"name": "demo", "map": "c1m1_hotel", "players": 1, "max_players": 8, "vac": 1},
     {"name": "demo", "map": "c1m1_hotel", "players": 1, "max_players": 8}, None),
    ({"name": "demo"}, {"name": "demo", "map": None, "players": None, "max_players": None},
     None),
    (_a2s.A2SError("no answer within 1 s"), None, "no answer within 1 s"),
    (None, None, None),  # not asked: neither is set
])
def test_an_a2s_answer_or_why_there_was_none(answer, a2s, a2s_error):
    info = info_of("coop1", RUNNING, {"LEFT4ME_PORT": "27015"})
    _srcds_info.record_a2s(info, answer)
    assert (info.a2s, info.a2s_error) == (a2s, a2s_error)


STATUS = (
    "hostname: left4me demo coop\nmap     : c1m1_hotel\n"
    "# userid name uniqueid connected ping loss state rate adr\n"
    '#  2 1 "Veteran" STEAM_1:1:41813649 2:05:07 64 0 active 30000 127.0.0.4:27005\n'
    '# 4 "Coach" BOT active\n'
    "#end\n"
    "# what is this row\n"
)


def test_players_from_rcon_status_with_bots_marked_and_rows_that_did_not_parse():
    info = info_of("coop1", RUNNING, {"LEFT4ME_PORT": "27015"})
    _srcds_info.record_status(info, STATUS)
    assert [(p["name"], p["bot"]) for p in info.players] == [("Veteran", False), ("Coach", True)]
    assert info.players[0]["connected_seconds"] == 7507
    assert len(info.status_problems) == 1 and "what is this row" in info.status_problems[0]
    assert info.as_dict()["players"] == info.players
