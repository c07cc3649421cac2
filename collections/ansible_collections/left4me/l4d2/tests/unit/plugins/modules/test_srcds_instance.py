# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Runs the srcds_instance module in-process: bad arguments fail before anything is looked up
on the host or written (the start/stop paths need systemd: molecule/instances covers them)."""

from __future__ import annotations

import json
import pathlib
import sys

import pytest

try:
    from ansible_collections.left4me.l4d2.plugins.module_utils import (
        _instance_apply,
        _instance_plan,
        _instance_units,
    )
    from ansible_collections.left4me.l4d2.plugins.modules import srcds_instance
except ImportError:  # plain pytest from the repo root: make the collection importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))
    from ansible_collections.left4me.l4d2.plugins.module_utils import (
        _instance_apply,
        _instance_plan,
        _instance_units,
    )
    from ansible_collections.left4me.l4d2.plugins.modules import srcds_instance

from ansible.module_utils.testing import patch_module_args


@pytest.fixture
def dirs(tmp_path):
    state = tmp_path / "state"
    for sub in ("installation", "overlays/maps", "runtime"):
        (state / sub).mkdir(parents=True)
    (tmp_path / "etc" / "instances").mkdir(parents=True)
    (tmp_path / "etc" / "instances" / "old.env").write_text("LEFT4ME_PORT=27020\n")
    (tmp_path / "systemd").mkdir()
    return {"state_dir": str(state), "config_dir": str(tmp_path / "etc"),
            "systemd_dir": str(tmp_path / "systemd"), "owner": "no-such-user-here"}


def listing(root: pathlib.Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def run(capsys, **args) -> dict:
    with patch_module_args(args), pytest.raises(SystemExit):
        srcds_instance.main()
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"name": "Bad!", "port": 27015}, "invalid instance name 'Bad!'"),
        ({"name": "a", "port": 80}, "between 1024 and 65535, got 80"),
        ({"name": "a", "port": 27020}, "already configured for instance 'old'"),
        ({"instances": [{"name": "a", "port": 27015}, {"name": "b", "port": 27015}]},
         "port 27015 is used by both instance 'a' and 'b'"),
        ({"instances": [{"name": "a", "port": 27015}, {"name": "a", "port": 27016}]},
         "instance 'a' is listed twice"),
        ({"name": "a", "port": 27015, "lowerdirs": ["/etc"]}, "outside the allowed roots"),
        ({"name": "a", "port": 27015, "overlays": ["maps"] * 499}, "make 501"),
        ({"name": "ghost"}, "instance 'ghost' is not configured on this host"),
        ({"name": "a", "state": "absent", "port": 27015}, "state=absent takes only the name"),
        ({"instances": [{"name": "a", "port": 27015}], "port": 27016},
         "port apply to a single instance"),
        ({"name": "a", "port": 27015}, "runtime user 'no-such-user-here' does not exist"),
    ],
)
def test_bad_arguments_fail_and_write_nothing(capsys, dirs, tmp_path, args, message):
    before = listing(tmp_path)
    result = run(capsys, _ansible_check_mode=False, **dirs, **args)
    assert result["failed"] and message in result["msg"], result["msg"]
    assert listing(tmp_path) == before


def test_name_and_instances_are_mutually_exclusive(capsys, dirs):
    result = run(capsys, name="a", instances=[{"name": "b"}], **dirs)
    assert result["failed"] and "mutually exclusive" in result["msg"]


def test_rcon_password_never_reaches_the_output(capsys, dirs):
    result = run(capsys, name="a", port=80, rcon_password="hunter2-secret", **dirs)
    assert "hunter2-secret" not in json.dumps(result)


@pytest.mark.parametrize(
    ("props", "running"),
    [
        ({"ActiveState": "active", "SubState": "running"}, True),
        ({"ActiveState": "activating", "SubState": "start-pre"}, True),
        ({"ActiveState": "activating", "SubState": "auto-restart"}, False),
        ({"ActiveState": "failed", "SubState": "failed"}, False),
        ({"ActiveState": "inactive", "SubState": "dead"}, False),
    ],
)
def test_running_means_serving_or_about_to(props, running):
    assert _instance_units.is_running(props) is running


def test_without_root_the_module_says_to_use_become(capsys, dirs, monkeypatch):
    """`ansible HOST -m left4me.l4d2.srcds_instance -a 'name=x state=restarted'` without -b."""
    monkeypatch.setattr(_instance_plan.os, "geteuid", lambda: 1000)
    result = run(capsys, name="x", state="restarted", **dirs)
    assert result["failed"]
    assert result["msg"].startswith("srcds_instance needs root: run with become (-b")
    assert "Errno" not in result["msg"]


# --- failures after the start, with a stand-in for systemctl and journalctl ---------------

TAINTED = ("left4me-mount: mount coop1: upper dir /s/runtime/coop1/upper was written by"
           " fuse-overlayfs; move it aside")


class Failed(Exception):
    pass


class FakeModule:
    """What Host needs of AnsibleModule: run_command answers from a table of argv[0..1]."""

    def __init__(self, answers: dict[str, tuple[int, str, str]]) -> None:
        self.answers = answers
        self.calls: list[list[str]] = []
        self.warnings: list[str] = []

    def run_command(self, argv, environ_update=None):
        self.calls.append(argv)
        return self.answers.get(" ".join(argv[:2]), (0, "", ""))

    def fail_json(self, **result):
        raise Failed(result)

    def warn(self, message):
        self.warnings.append(message)


def journal(*entries: dict) -> str:
    return "\n".join(json.dumps(e) for e in entries) + "\n"


STARTED_US = 9_000_000  # CLOCK_MONOTONIC microseconds when the module began starting units


def plan(name="coop1", actions=("restart",), secrets=()):
    p = srcds_instance.InstancePlan(name, None, srcds_instance.HostLayout())
    p.actions, p.port, p.ip, p.secrets = list(actions), 27015, "127.0.0.1", list(secrets)
    p.invocation_before = "old-run"
    return p


def test_a_refused_mount_puts_the_helpers_reason_in_the_message():
    module = FakeModule({
        "systemctl restart": (1, "", "Job for left4me-server@coop1.service failed because the"
                              " control process exited with error code.\nSee ...\n"),
        "systemctl show": (0, "Id=left4me-server@coop1.service\nActiveState=activating\n"
                              "SubState=auto-restart\n", ""),
        "journalctl -u": (0, journal(
            {"MESSAGE": "Server shutting down.", "_SYSTEMD_INVOCATION_ID": "old-run"},
            {"MESSAGE": TAINTED, "_SYSTEMD_INVOCATION_ID": "new-run", "_PID": "77"},
            {"MESSAGE": "left4me-server@coop1.service: Failed with result 'exit-code'.",
             "_PID": "1", "INVOCATION_ID": "new-run"}), ""),
    })
    plans = [plan()]
    with pytest.raises(Failed) as failed:
        _instance_apply.start_units(module, srcds_instance.Systemd(module), plans, "restart",
                                    5.5, STARTED_US)
    msg = failed.value.args[0]["msg"]
    assert msg.startswith(f"left4me-server@coop1.service did not start: {TAINTED}")
    assert msg.endswith("(systemctl restart rc 1: Job for left4me-server@coop1.service failed"
                        " because the control process exited with error code.)")
    journalctl = next(c for c in module.calls if c[:2] == ["journalctl", "-u"])
    assert "--since=@5.500000" in journalctl, "only this start's runs explain it"


def test_a_restart_systemd_retries_after_a_spawn_failure_goes_on_to_the_wait():
    # Seen on a loaded host: "bpf-socket-bind: Failed to open cgroup ...: No such file or
    # directory", "Failed to spawn 'start-pre' task", result 'resources'; systemd restarted
    # the unit a second later and it served. The module waits for A2S instead of failing.
    module = FakeModule({
        "systemctl restart": (1, "", "Job for left4me-server@coop1.service failed because of"
                              " unavailable resources or another system error.\n"),
        "systemctl show": (0, "Id=left4me-server@coop1.service\nActiveState=activating\n"
                              "SubState=auto-restart\nResult=resources\n", ""),
    })
    _instance_apply.start_units(module, srcds_instance.Systemd(module), [plan()], "restart",
                                5.5, STARTED_US)
    assert module.warnings == [
        "systemctl restart reported Job for left4me-server@coop1.service failed because of"
        " unavailable resources or another system error.; systemd is starting the unit again"
        " (Restart=on-failure)"]
    assert not [c for c in module.calls if c[:2] == ["journalctl", "-u"]]
    show = next(c for c in module.calls if c[:2] == ["systemctl", "show"])
    assert "Result" in show[2].split("=", 1)[1].split(","), "the decision reads Result"


def test_a_start_whose_retry_reached_the_server_goes_on_to_the_wait():
    # Seen in molecule: the first spawn failed ('resources', so systemctl start failed), the
    # retry ran the server, which could not bind and exited ('exit-code', auto-restart) by
    # the time the module looked. The server ran, so the A2S wait and its journal excerpt
    # ("Couldn't allocate any server IP port") say why, not a bare spawn error.
    module = FakeModule({
        "systemctl start": (1, "", "Job for left4me-server@coop1.service failed because of"
                            " unavailable resources or another system error.\n"),
        "systemctl show": (0, "Id=left4me-server@coop1.service\nActiveState=activating\n"
                              "SubState=auto-restart\nResult=exit-code\n"
                              f"ExecMainStartTimestampMonotonic={STARTED_US + 2_000_000}\n", ""),
    })
    _instance_apply.start_units(module, srcds_instance.Systemd(module),
                                [plan(actions=["start"])], "start", 5.5, STARTED_US)
    assert len(module.warnings) == 1 and "systemd is starting the unit again" in module.warnings[0]
    show = next(c for c in module.calls if c[:2] == ["systemctl", "show"])
    assert "ExecMainStartTimestampMonotonic" in show[2]


def test_a_server_that_exits_at_start_shows_the_journals_reason(silent_udp_port):
    module = FakeModule({
        "systemctl show": (0, "Id=left4me-server@coop1.service\nActiveState=failed\n", ""),
        "journalctl -u": (0, journal(
            {"MESSAGE": 'rcon_password "pw-123456"', "_SYSTEMD_INVOCATION_ID": "r5"},
            {"MESSAGE": "WARNING: NET_OpenSockets: Couldn't allocate any server IP port",
             "_SYSTEMD_INVOCATION_ID": "r5"},
            {"MESSAGE": "left4me-server@coop1.service: Main process exited, code=exited,"
                        " status=1/FAILURE", "_PID": "1", "INVOCATION_ID": "r5"}), ""),
    })
    plans = [plan(secrets=["pw-123456"])]
    plans[0].port = silent_udp_port
    params = {"probe_address": None, "wait_retries": 3, "wait_timeout": 0.2}
    with pytest.raises(Failed) as failed:
        _instance_apply.wait_for_answers(module, srcds_instance.Systemd(module), plans, params,
                                         1.0)
    msg = failed.value.args[0]["msg"]
    assert f"did not answer A2S_INFO on 127.0.0.1:{silent_udp_port} (the unit failed)" in msg
    assert "Couldn't allocate any server IP port" in msg and "status=1/FAILURE" in msg
    assert "pw-123456" not in json.dumps(failed.value.args[0])


@pytest.fixture
def silent_udp_port():
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


class SequencedModule(FakeModule):
    """systemctl show answers "restarting" a few times, then "failed" (a crash loop ending)."""

    def __init__(self, restarting_answers: int) -> None:
        super().__init__({})
        self.left = restarting_answers

    def run_command(self, argv, environ_update=None):
        self.calls.append(argv)
        if argv[:2] == ["systemctl", "show"]:
            self.left -= 1
            state = "activating\nSubState=auto-restart" if self.left >= 0 else "failed"
            return 0, f"Id=left4me-server@coop1.service\nActiveState={state}\n", ""
        return 0, "", ""


@pytest.mark.parametrize(("restarting", "said"), [
    (2, ":0: (the unit failed); journal of"),
    (3, ":0: (no A2S answer before the timeout; the unit is restarting after a failure)"),
])
def test_out_of_retries_the_message_says_where_the_unit_stands(silent_udp_port, restarting,
                                                               said):
    module = SequencedModule(restarting)
    plans = [plan()]
    plans[0].port = silent_udp_port
    params = {"probe_address": None, "wait_retries": 2, "wait_timeout": 0.1}
    with pytest.raises(Failed) as failed:
        _instance_apply.wait_for_answers(module, srcds_instance.Systemd(module), plans, params,
                                         1.0)
    assert said.replace(":0:", f":{silent_udp_port}") in failed.value.args[0]["msg"]


# --- check mode: the decision is reported, nothing but `systemctl show` runs -----------

UNIT_SHOW = {
    "active": "ActiveState=active\nSubState=running\nUnitFileState=enabled\n",
    "inactive": "ActiveState=inactive\nSubState=dead\nUnitFileState=disabled\n",
    "failed": "ActiveState=failed\nSubState=failed\nUnitFileState=enabled\n",
}


@pytest.fixture
def fake_systemctl(monkeypatch):
    """systemctl show answers the unit state given; every command run is recorded."""
    calls: list[list[str]] = []
    unit = {"state": "inactive"}

    def run_command(_module, argv, environ_update=None, **_kwargs):
        calls.append(list(argv))
        if argv[:2] == ["systemctl", "show"]:
            return 0, f"Id=left4me-server@coop1.service\n{UNIT_SHOW[unit['state']]}", ""
        return 0, "", ""

    monkeypatch.setattr(srcds_instance.AnsibleModule, "run_command", run_command)
    monkeypatch.setattr(_instance_plan, "enter_mount_namespace", lambda: False)
    monkeypatch.setattr(_instance_plan, "missing_steam_links", lambda _home: [])
    return calls, unit


@pytest.mark.parametrize("unit_state", ["active", "inactive", "failed"])
@pytest.mark.parametrize("state", ["started", "restarted", "stopped", "absent"])
def test_check_mode_reports_the_decision_and_runs_nothing(capsys, dirs, tmp_path,
                                                          fake_systemctl, state, unit_state):
    calls, unit = fake_systemctl
    unit["state"] = unit_state
    (tmp_path / "etc" / "instances" / "coop1.env").write_text("LEFT4ME_PORT=27015\n")
    before = listing(tmp_path)
    result = run(capsys, _ansible_check_mode=True, name="coop1", state=state,
                 **{**dirs, "owner": "root"})
    props = dict(line.split("=", 1) for line in UNIT_SHOW[unit_state].splitlines())
    leftovers = state == "absent"  # the env file is there
    wanted = _instance_units.unit_actions(state, props, leftovers=leftovers)
    assert result["instances"][0]["actions"] == wanted
    assert result["changed"] is bool(wanted)
    assert [c[:2] for c in calls] == [["systemctl", "show"]]
    assert listing(tmp_path) == before


def test_check_mode_diff_of_a_real_change_never_shows_the_password(capsys, dirs, tmp_path,
                                                                   fake_systemctl):
    """The diff path itself, not a validation failure: a configured instance gets a new
    password; the old and the new one appear nowhere in the result."""
    layout = srcds_instance.HostLayout(dirs["state_dir"], dirs["config_dir"],
                                       dirs["systemd_dir"])
    cfg = pathlib.Path(layout.instance_cfg("coop1"))
    cfg.parent.mkdir(parents=True)
    cfg.write_text('rcon_password "old-secret-on-disk"\n')
    (tmp_path / "etc" / "instances" / "coop1.env").write_text("LEFT4ME_PORT=27015\n")
    result = run(capsys, _ansible_check_mode=True, _ansible_diff=True, name="coop1",
                 port=27015, overlays=["maps"], rcon_password="hunter2-secret", state="present",
                 **{**dirs, "owner": "root"})
    shown = {d["after_header"]: d for d in result["diff"]}
    assert result["changed"] and str(cfg) in shown
    assert shown[str(cfg)]["before"] == "(previous content not shown: it holds a secret)\n"
    assert 'rcon_password "********"' in shown[str(cfg)]["after"]
    assert "hunter2-secret" not in json.dumps(result)
    assert "old-secret-on-disk" not in json.dumps(result)


@pytest.mark.parametrize("state", ["absent", "stopped", "restarted"])
def test_another_managers_instance_is_refused_and_left_alone(capsys, dirs, tmp_path, state):
    """The UI (manager=ui) may not stop, restart or remove a server site.yml manages."""
    (tmp_path / "etc" / "instances" / "old.manager").write_text("inventory\n")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    result = run(capsys, name="old", state=state, manager="ui", **{**dirs, "owner": "root"})
    assert result["failed"]
    assert result["msg"].startswith("instance 'old' is managed by inventory"), result["msg"]
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("state", ["absent", "stopped", "restarted", "started"])
def test_another_owners_instance_is_refused_and_left_alone(capsys, dirs, tmp_path, state):
    """A UI may not act on a ui instance another UI (or AWX) claimed, by naming it."""
    (tmp_path / "etc" / "instances" / "old.env").write_text("LEFT4ME_PORT=27015\n")
    (tmp_path / "etc" / "instances" / "old.manager").write_text("claim ui:other/4\nui\n")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    settings = {"port": 27015, "overlays": ["maps"]} if state == "started" else {}
    result = run(capsys, name="old", state=state, manager="ui", claim="ui:mine/9",
                 **settings, **{**dirs, "owner": "root"})
    assert result["failed"]
    assert result["msg"].startswith("instance 'old' is owned by ui:other/4"), result["msg"]
    assert "not by ui:mine/9" in result["msg"]
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
