# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Runs the srcds_info and rcon modules in-process on a faked host (systemctl, journalctl,
A2S and RCON answered by the test): what they ask, what they report, what they refuse
before asking anything. tests/collection/test_reads_on_host.py runs them on a real host."""

from __future__ import annotations

import json
import os
import pathlib
import sys
import time

import pytest

try:
    from ansible_collections.left4me.l4d2.plugins.module_utils import _a2s, _mount, _rcon
    from ansible_collections.left4me.l4d2.plugins.modules import rcon, server_logs, srcds_info
except ImportError:  # plain pytest from the repo root: make the collection importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))
    from ansible_collections.left4me.l4d2.plugins.module_utils import _a2s, _mount, _rcon
    from ansible_collections.left4me.l4d2.plugins.modules import rcon, server_logs, srcds_info

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

REAL_RUN_COMMAND = _rcon.run_command  # the fixture fakes it; one test talks to the stand-in
COOP_PASSWORD = "sekrit-coop"
STATUS = ('# userid name uniqueid connected ping loss state rate adr\n'
          '#  2 1 "Veteran" STEAM_1:1:41813649 2:05:07 64 0 active 30000 127.0.0.4:27005\n'
          '# 4 "Coach" BOT active\n')


def show(name: str, **changes: str) -> str:
    props = {"Id": f"left4me-server@{name}.service", "LoadState": "loaded",
             "UnitFileState": "enabled", "ActiveState": "active", "SubState": "running",
             "Result": "success", "NRestarts": "0", "MemoryCurrent": "1000",
             "CPUUsageNSec": "2000000000", "ExecMainCode": "0", "ExecMainStatus": "0",
             "StartLimitBurst": "5", "StartLimitIntervalUSec": "1min",
             "InvocationID": f"run-of-{name}-1", **changes}
    return "\n".join(f"{key}={value}" for key, value in props.items())


CRASHED = dict(ActiveState="failed", SubState="failed", Result="signal", ExecMainCode="2",
               ExecMainStatus="9", NRestarts="5")
JOURNAL = "\n".join(json.dumps({"MESSAGE": m}) for m in (
    "Main process exited, code=killed, status=9/KILL", f"echo rcon_password {COOP_PASSWORD}",
    "Start request repeated too quickly."))


@pytest.fixture
def host(tmp_path, monkeypatch):
    """Two instances (coop1 on every address, versus1 on 10.0.0.5), coop1 mounted; records
    every command, A2S and RCON call the modules make."""
    state, etc = tmp_path / "state", tmp_path / "etc"
    (etc / "instances").mkdir(parents=True)
    (etc / "instances" / "coop1.env").write_text("LEFT4ME_PORT=27015\nLEFT4ME_IP=0.0.0.0\n")
    (etc / "instances" / "versus1.env").write_text("LEFT4ME_PORT=27025\nLEFT4ME_IP=10.0.0.5\n")
    cfg = state / "overlays" / ".instance-coop1" / "left4dead2" / "cfg" / "left4me"
    cfg.mkdir(parents=True)
    (cfg / "instance.cfg").write_text(f'rcon_password "{COOP_PASSWORD}"\n')
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(f"36 35 0:30 / {state}/runtime/coop1/merged rw - overlay overlay rw\n")
    fake = {"show": show("coop1") + "\n\n" + show("versus1", **CRASHED), "calls": [],
            "a2s": {"coop1": {"name": "demo", "map": "c1m1_hotel", "players": 1,
                              "max_players": 8}},
            "rcon": lambda: ("hello", 0.25),
            "args": {"state_dir": str(state), "config_dir": str(etc)}}

    def run_command(_module, argv, **_kwargs):
        fake["calls"].append(argv[0])
        return (0, fake["show"], "") if argv[0] == "systemctl" else (0, JOURNAL, "")

    def query_many(targets, _timeout):
        fake["calls"].append(("a2s", dict(targets)))
        return {name: fake["a2s"].get(name, _a2s.A2SError("no answer")) for name in targets}

    def send(port, password, command, _timeout, address):
        fake["calls"].append(("rcon", address, port, password, command))
        return fake["rcon"]()  # the server's answer, or the RconError it ends in

    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    monkeypatch.setattr(_rcon, "REFUSALS_DIR", str(tmp_path / "run" / "rcon-refused"))
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setattr(_mount, "mountinfo_path", lambda _pid: str(mountinfo))
    monkeypatch.setattr(_a2s, "query_many", query_many)
    monkeypatch.setattr(_rcon, "run_command", send)
    return fake


def run(module, capsys, host, **args) -> tuple[dict, str]:
    with patch_module_args({**host["args"], **args}), pytest.raises(SystemExit):
        module.main()
    out = capsys.readouterr().out
    return json.loads(out), out


def test_srcds_info_reports_each_instance_and_asks_only_running_servers(capsys, host):
    host["rcon"] = lambda: (STATUS, 0.1)
    result, out = run(srcds_info, capsys, host, players=True, journal_lines=2)
    coop, versus = result["instances"]
    assert not result["changed"] and COOP_PASSWORD not in out
    assert (coop["state"], coop["mounted"], coop["a2s"]["map"]) == ("running", True, "c1m1_hotel")
    assert [(p["name"], p["bot"]) for p in coop["players"]] == [
        ("Veteran", False), ("Coach", True)]
    assert (versus["state"], versus["mounted"], versus["a2s"], versus["players"]) == (
        "crash_loop", False, None, None)
    assert versus["reason"] == "crash loop: gave up after 5 starts within 60 s (killed by SIGKILL)"
    assert versus["journal"] == ["echo rcon_password ********",
                                 "Start request repeated too quickly."]
    # One systemctl for all, the journal of the server that is down, A2S and RCON of coop1.
    assert host["calls"] == ["systemctl", "journalctl", ("a2s", {"coop1": ("127.0.0.1", 27015)}),
                             ("rcon", "127.0.0.1", 27015, COOP_PASSWORD, "status")]


def test_srcds_info_says_why_players_could_not_be_read(capsys, host):
    def refuse():
        raise _rcon.RconAuthError("the server refused the RCON password")

    host["rcon"] = refuse
    result, _out = run(srcds_info, capsys, host, names=["coop1"], players=True)
    assert result["instances"][0]["players_error"] == "the server refused the RCON password"


def test_srcds_info_does_not_ask_a_server_that_refused_until_it_restarts(capsys, host):
    """srcds bans an address after a few wrong passwords: one refusal per run of the unit."""
    def refuse():
        raise _rcon.RconAuthError(_rcon.AUTH_FAILED_MESSAGE)

    host["rcon"] = refuse
    result, _out = run(srcds_info, capsys, host, names=["coop1"], players=True)
    coop = result["instances"][0]
    assert coop["rcon_refused"] and coop["invocation"] == "run-of-coop1-1"
    asked = [c for c in host["calls"] if c[0] == "rcon"]
    assert len(asked) == 1, "one login, no retry"
    refused = {"coop1": coop["invocation"]}
    result, _out = run(srcds_info, capsys, host, names=["coop1"], players=True,
                       rcon_refused=refused)
    coop = result["instances"][0]
    assert coop["rcon_refused"] and "restart the server" in coop["players_error"]
    assert [c for c in host["calls"] if c[0] == "rcon"] == asked, "not asked again"
    host["show"] = show("coop1", InvocationID="run-of-coop1-2")  # restarted
    host["rcon"] = lambda: (STATUS, 0.1)
    result, _out = run(srcds_info, capsys, host, names=["coop1"], players=True,
                       rcon_refused=refused)
    assert not result["instances"][0]["rcon_refused"] and result["instances"][0]["players"]


@pytest.mark.parametrize("args, message", [
    ({"names": ["coop1", "ghost"]}, "not configured on this host: ghost"),
    ({"names": ["Bad!"]}, "invalid instance name 'Bad!'"),
    ({"journal_lines": 1001}, "journal_lines must be between 0 and 1000"),
    ({"a2s_timeout": 0}, "a2s_timeout and rcon_timeout must be above 0"),
])
def test_srcds_info_refuses_before_asking_anything(capsys, host, args, message):
    result, _out = run(srcds_info, capsys, host, **args)
    assert result["failed"] and message in result["msg"]
    assert host["calls"] == []


def test_rcon_sends_with_the_password_read_on_the_host_and_never_shows_it(capsys, host):
    host["rcon"] = lambda: (f"rcon_password is {COOP_PASSWORD}\nok", 0.25)
    result, out = run(rcon, capsys, host, name="coop1", command="status")
    assert result["changed"] and result["address"] == "127.0.0.1:27015"
    assert result["stdout_lines"] == ["rcon_password is ********", "ok"]
    assert COOP_PASSWORD not in out
    assert host["calls"][-1] == ("rcon", "127.0.0.1", 27015, COOP_PASSWORD, "status")


VICTIM_PASSWORD = "VICTIM-SECRET"


def plant(host, kind: str) -> None:
    """What a tenant can put at coop1's merged server.cfg: a link to another instance's
    instance.cfg, a link to /dev/zero, a FIFO nobody writes."""
    state = pathlib.Path(host["args"]["state_dir"])
    victim = state / "overlays" / ".instance-victim" / "left4dead2" / "cfg" / "left4me"
    victim.mkdir(parents=True)
    (victim / "instance.cfg").write_text(f'rcon_password "{VICTIM_PASSWORD}"\n')
    cfg = state / "runtime" / "coop1" / "merged" / "left4dead2" / "cfg"
    cfg.mkdir(parents=True)
    if kind == "victim":
        (cfg / "server.cfg").symlink_to(victim / "instance.cfg")
    elif kind == "zero":
        (cfg / "server.cfg").symlink_to("/dev/zero")
    else:
        os.mkfifo(cfg / "server.cfg")


@pytest.mark.parametrize("kind", ["victim", "zero", "fifo"])
def test_rcon_and_srcds_info_use_the_own_password_whatever_server_cfg_is(capsys, host, kind):
    plant(host, kind)
    started = time.monotonic()
    result, out = run(rcon, capsys, host, name="coop1", command="status")
    assert result["changed"] and VICTIM_PASSWORD not in out
    assert host["calls"][-1] == ("rcon", "127.0.0.1", 27015, COOP_PASSWORD, "status")
    host["rcon"] = lambda: (STATUS, 0.1)
    result, out = run(srcds_info, capsys, host, names=["coop1"], players=True)
    assert host["calls"][-1] == ("rcon", "127.0.0.1", 27015, COOP_PASSWORD, "status")
    result, out = run(server_logs, capsys, host, name="coop1")
    assert not result.get("failed") and VICTIM_PASSWORD not in out
    assert time.monotonic() - started < 5, "nothing waited on the FIFO or read /dev/zero"


def test_an_instance_cfg_that_is_a_link_is_refused_by_name_and_nothing_is_sent(capsys, host):
    state = pathlib.Path(host["args"]["state_dir"])
    cfg = state / "overlays" / ".instance-coop1" / "left4dead2" / "cfg" / "left4me"
    (cfg / "instance.cfg").unlink()
    (cfg / "instance.cfg").symlink_to("/dev/zero")
    result, _out = run(rcon, capsys, host, name="coop1", command="status")
    assert result["failed"] and "instance.cfg is a symbolic link: not read" in result["msg"]
    result, _out = run(srcds_info, capsys, host, names=["coop1"], players=True)
    assert "is a symbolic link: not read" in result["instances"][0]["players_error"]
    assert not [c for c in host["calls"] if c[0] == "rcon"]


def test_rcon_in_check_mode_sends_nothing(capsys, host):
    result, _out = run(rcon, capsys, host, name="coop1", command="status", _ansible_check_mode=True)
    assert result["changed"] and result["msg"] == "check mode: command not sent"
    assert host["calls"] == ["systemctl"]


@pytest.mark.parametrize("args, message, asked", [
    ({"name": "Bad!", "command": "status"}, "invalid instance name 'Bad!'", []),
    ({"name": "coop1", "command": "status\nquit"}, "command contains a line feed", []),
    ({"name": "coop1", "command": "status", "timeout": 0}, "timeout must be above 0", []),
    ({"name": "ghost", "command": "status"}, "instance 'ghost' is not configured", []),
    # rcon reads no journal: the state is systemd's alone.
    ({"name": "versus1", "command": "status"}, "instance 'versus1' is not running (failed:"
     " killed by SIGKILL); nothing was sent", ["systemctl"]),
])
def test_rcon_refuses_and_sends_nothing(capsys, host, args, message, asked):
    result, _out = run(rcon, capsys, host, **args)
    assert result["failed"] and result["msg"].startswith(message), result["msg"]
    assert host["calls"] == asked


def test_a_refusal_seen_by_one_path_stops_every_path_until_the_server_restarts(capsys, host):
    """The poller's refused login stops the console too (the host remembers it per run of the
    unit); a restart (a new InvocationID) lets both ask again."""
    def refuse():
        raise _rcon.RconAuthError(_rcon.AUTH_FAILED_MESSAGE)

    host["rcon"] = refuse
    run(srcds_info, capsys, host, names=["coop1"], players=True)
    result, _out = run(rcon, capsys, host, name="coop1", command="status")
    assert result["failed"] and "not sent: it refused left4me's RCON password" in result["msg"]
    result, _out = run(srcds_info, capsys, host, names=["coop1"], players=True)  # no memory
    assert result["instances"][0]["rcon_refused"]
    assert len([c for c in host["calls"] if c[0] == "rcon"]) == 1
    host["show"] = show("coop1", InvocationID="run-of-coop1-2")
    host["rcon"] = lambda: ("ok", 0.1)
    result, _out = run(rcon, capsys, host, name="coop1", command="status")
    assert result["output"] == "ok"


def test_a_stale_password_costs_the_real_server_one_failed_login_whatever_asks(
        capsys, host, monkeypatch, start_srcds, standin_harness, tmp_path):
    """Against the stand-in (real srcds's ban rules: the 6th refused login within 30 s bans
    127.0.0.1 from RCON and A2S): console commands and polls, again and again, after the
    server's password changed. The stand-in sees exactly one bad login and bans nobody."""
    monkeypatch.setattr(_rcon, "run_command", REAL_RUN_COMMAND)
    root = standin_harness.make_game_root(tmp_path / "game",
                                          'rcon_password "changed-by-a-plugin"\n')
    server = start_srcds(root)
    etc = pathlib.Path(host["args"]["config_dir"])
    (etc / "instances" / "coop1.env").write_text(
        f"LEFT4ME_PORT={server.port}\nLEFT4ME_IP=127.0.0.1\n")
    for _round in range(4):
        result, _out = run(rcon, capsys, host, name="coop1", command="status")
        assert result["failed"]
        result, _out = run(srcds_info, capsys, host, names=["coop1"], players=True)
        assert result["instances"][0]["rcon_refused"]
    bad = [line for line in server.process.lines if line.endswith(": Bad Password")]
    assert len(bad) == 1
    assert not any("Banning" in line for line in server.process.lines)
