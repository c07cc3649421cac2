# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Tests for module_utils/_instance_units.py: the start/restart/stop decision of every state
and unit state, the wait for A2S_INFO answers, and the diff (never the RCON password)."""

from __future__ import annotations

import json
import pathlib
import sys

import pytest

try:
    from ansible_collections.left4me.l4d2.plugins.module_utils import _instance as inst
    from ansible_collections.left4me.l4d2.plugins.module_utils import _instance_units as units
except ImportError:  # plain pytest from the repo root: make the collection importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))
    from ansible_collections.left4me.l4d2.plugins.module_utils import _instance as inst
    from ansible_collections.left4me.l4d2.plugins.module_utils import _instance_units as units

ACTIVE = {"ActiveState": "active", "SubState": "running", "UnitFileState": "enabled"}
INACTIVE = {"ActiveState": "inactive", "SubState": "dead", "UnitFileState": "disabled"}
FAILED = {"ActiveState": "failed", "SubState": "failed", "UnitFileState": "enabled"}
UNITS = {"active": ACTIVE, "inactive": INACTIVE, "failed": FAILED}

# (state, unit) -> (actions when the config is unchanged, actions when it changed)
EXPECTED = {
    ("present", "active"): ([], []),
    ("present", "inactive"): ([], []),
    ("present", "failed"): ([], []),
    ("started", "active"): ([], ["restart"]),
    ("started", "inactive"): (["enable", "start"], ["enable", "start"]),
    ("started", "failed"): (["start"], ["start"]),
    ("restarted", "active"): (["restart"], ["restart"]),
    ("restarted", "inactive"): (["enable", "restart"], ["enable", "restart"]),
    ("restarted", "failed"): (["restart"], ["restart"]),
    ("stopped", "active"): (["disable", "stop"], ["disable", "stop"]),
    ("stopped", "inactive"): ([], []),
    ("stopped", "failed"): (["disable"], ["disable"]),
    ("absent", "active"): (["disable", "stop", "remove"], ["disable", "stop", "remove"]),
    ("absent", "inactive"): (["remove"], ["remove"]),
    ("absent", "failed"): (["disable", "remove"], ["disable", "remove"]),
}


@pytest.mark.parametrize("config_changed", [False, True])
@pytest.mark.parametrize(("state", "unit"), sorted(EXPECTED))
def test_unit_actions_for_every_state_and_unit(state, unit, config_changed):
    actions = units.unit_actions(state, UNITS[unit], config_changed=config_changed,
                                 leftovers=True)
    assert actions == EXPECTED[state, unit][config_changed]


def test_a_changed_config_does_not_restart_when_restart_on_change_is_off():
    assert units.unit_actions("started", ACTIVE, config_changed=True,
                              restart_on_change=False) == []


@pytest.mark.parametrize(("props", "state", "actions"), [
    # A unit restarting after a failure is not running: start it (systemd's own restart
    # would wait for RestartSec=), and stopping it still stops it.
    ({"ActiveState": "activating", "SubState": "auto-restart", "UnitFileState": "enabled"},
     "started", ["start"]),
    ({"ActiveState": "activating", "SubState": "auto-restart", "UnitFileState": "enabled"},
     "stopped", ["disable", "stop"]),
    ({"ActiveState": "activating", "SubState": "start-pre", "UnitFileState": "enabled"},
     "started", []),
    ({"ActiveState": "deactivating", "SubState": "stop-sigterm", "UnitFileState": "disabled"},
     "stopped", ["stop"]),
    ({"ActiveState": "active", "SubState": "running", "UnitFileState": "enabled-runtime"},
     "started", []),
    ({}, "started", ["enable", "start"]),  # a unit systemd does not know
])
def test_transitional_unit_states(props, state, actions):
    assert units.unit_actions(state, props) == actions


@pytest.mark.parametrize(("unit", "state", "actions"), [
    ("inactive", "stopped", ["unmount"]),  # a mount the stopped unit left behind
    ("active", "stopped", ["disable", "stop"]),  # stopping unmounts (ExecStopPost)
    ("inactive", "absent", ["unmount", "remove"]),
    ("inactive", "started", ["enable", "start"]),  # a start mounts afresh
])
def test_a_leftover_mount_is_unmounted_only_when_no_stop_does_it(unit, state, actions):
    assert units.unit_actions(state, UNITS[unit], mounted=True, leftovers=True) == actions


def test_absent_with_nothing_left_removes_nothing():
    assert units.unit_actions("absent", INACTIVE, leftovers=False) == []


@pytest.mark.parametrize(("props", "actions", "reset"), [
    (FAILED, ["start"], True),
    (FAILED, ["restart"], True),
    (FAILED, ["disable"], False),
    # A running unit restarted on request: its start counter is cleared too, or the
    # sixth restart in a minute would hit the crash-loop cap (start-limit-hit).
    (ACTIVE, ["restart"], True),
    (ACTIVE, ["stop"], False),
    # Never started (or unloaded since): nothing to reset, and reset-failed would refuse it.
    (INACTIVE, ["enable", "start"], False),
])
def test_a_unit_is_reset_before_every_requested_start(props, actions, reset):
    assert units.needs_reset(props, actions) is reset


START = 5_000_000  # CLOCK_MONOTONIC microseconds when the module began the start


@pytest.mark.parametrize(("active", "sub", "result", "server_ran_us", "failed"), [
    ("failed", "failed", "exit-code", START + 1, True),
    ("inactive", "dead", "success", 0, True),
    # PID 1 could not spawn it ('resources', e.g. racing the old run's cgroup removal):
    # systemd retries by itself, so the start is not a failure yet.
    ("activating", "auto-restart", "resources", 0, False),
    ("activating", "start-pre", "success", 0, False),  # the retry is already under way
    # ExecStartPre refused (a mount): no server process since the start, failed at once.
    ("activating", "auto-restart", "exit-code", 0, True),
    ("activating", "auto-restart", "exit-code", START - 1, True),  # an earlier run's server
    # The retry after a 'resources' failure reached the server, which exited (cannot bind):
    # the A2S wait decides, and its journal excerpt says why.
    ("activating", "auto-restart", "exit-code", START, False),
    ("active", "running", "success", START + 1, False),
])
def test_a_failed_start_that_systemd_retries_is_not_a_failure_yet(active, sub, result,
                                                                  server_ran_us, failed):
    props = {"ActiveState": active, "SubState": sub, "Result": result,
             "ExecMainStartTimestampMonotonic": str(server_ran_us)}
    assert units.start_failed(props, START) is failed


# --- the wait --------------------------------------------------------------------------


def plan(name="coop1", ip="10.1.2.3", port=27015, **kwargs):
    p = inst.InstancePlan(name, None, inst.HostLayout())
    p.ip, p.port = ip, port
    for key, value in kwargs.items():
        setattr(p, key, value)
    return p


def test_probe_targets_asks_for_the_host_address_once_for_wildcard_binds():
    asked = []

    def host_address():
        asked.append(1)
        return "192.0.2.7"

    plans = [plan("a", ip="0.0.0.0"), plan("b", ip=None, port=27016), plan("c", port=27017)]
    assert units.probe_targets(plans, None, host_address) == {
        "a": ("192.0.2.7", 27015), "b": ("192.0.2.7", 27016), "c": ("10.1.2.3", 27017)}
    assert asked == [1]
    overridden = units.probe_targets(plans, "198.51.100.1", host_address)
    assert overridden["a"] == ("198.51.100.1", 27015)


class FakeWait:
    """Stands in for _a2s.wait_for_info: answers the given names, asks gave_up about the rest."""

    def __init__(self, answering, timed_out_reason="no A2S answer before the timeout"):
        self.answering = answering
        self.reason = timed_out_reason
        self.asked = []

    def __call__(self, targets, retries, timeout, gave_up):
        self.asked.append((dict(targets), retries, timeout))
        answers = {n: {"name": f"Server {n}", "map": "c1m1_hotel"}
                   for n in targets if n in self.answering}
        pending = [n for n in targets if n not in answers]
        failures = dict(gave_up(pending)) if pending else {}
        for name in pending:
            failures.setdefault(name, self.reason)
        return answers, failures


def states_of(table):
    calls = []

    def unit_states(names):
        calls.append(list(names))
        starting = {"ActiveState": "activating", "SubState": "start"}
        return {n: table.get(n, starting) for n in names}

    return unit_states, calls


TARGETS = {"a": ("10.0.0.1", 27015), "b": ("10.0.0.1", 27016)}


def test_every_server_answers():
    unit_states, _calls = states_of({})
    wait = FakeWait({"a", "b"})
    answers, failures = units.await_answers(TARGETS, 5, 0.5, unit_states, wait=wait)
    assert failures == {}
    assert answers["a"] == {"name": "Server a", "map": "c1m1_hotel", "address": "10.0.0.1"}
    assert wait.asked == [(TARGETS, 5, 0.5)]


def test_a_server_that_never_answers_times_out():
    unit_states, calls = states_of({})
    answers, failures = units.await_answers(TARGETS, 3, 1.0, unit_states, wait=FakeWait(set()))
    assert answers == {}
    assert failures == {"a": "no A2S answer before the timeout",
                        "b": "no A2S answer before the timeout"}
    assert calls[-1] == ["a", "b"], "out of retries, the units' state is looked up again"


def test_partial_answers_name_only_the_silent_servers():
    unit_states, _calls = states_of({
        "b": {"ActiveState": "activating", "SubState": "auto-restart"}})
    answers, failures = units.await_answers(TARGETS, 3, 1.0, unit_states,
                                            wait=FakeWait({"a"}))
    assert set(answers) == {"a"}
    assert failures == {
        "b": "no A2S answer before the timeout; the unit is restarting after a failure"}


def test_a_failed_unit_is_not_waited_for():
    unit_states, _calls = states_of({"b": FAILED})
    answers, failures = units.await_answers(TARGETS, 3, 1.0, unit_states,
                                            wait=FakeWait({"a"}))
    assert set(answers) == {"a"} and failures == {"b": units.UNIT_FAILED}


def test_the_no_answer_message_names_address_port_reason_and_journal():
    msg = units.no_answer_message({"b": "timed out", "a": units.UNIT_FAILED}, TARGETS,
                                  {"a": "exit 1", "b": "no output"})
    assert msg == ("instance 'a' did not answer A2S_INFO on 10.0.0.1:27015 (the unit failed);"
                   " journal of left4me-server@a.service: exit 1; instance 'b' did not answer"
                   " A2S_INFO on 10.0.0.1:27016 (timed out); journal of"
                   " left4me-server@b.service: no output")


# --- the diff --------------------------------------------------------------------------

SECRET = "hunter2-in-the-diff"
OLD_SECRET = "old-pass-on-disk"


@pytest.fixture
def layout(tmp_path):
    state = tmp_path / "state"
    for sub in ("installation", "overlays/maps"):
        (state / sub).mkdir(parents=True)
    (tmp_path / "etc" / "instances").mkdir(parents=True)
    (tmp_path / "systemd").mkdir()
    return inst.HostLayout(str(state), str(tmp_path / "etc"), str(tmp_path / "systemd"))


def planned(layout, **raw):
    spec = inst.validate_spec({"name": "coop1", "port": 27015, "overlays": ["maps"], **raw},
                              layout)
    p = inst.InstancePlan("coop1", spec, layout)
    p.files = [inst.file_change(f) for f in inst.wanted_files(spec, layout, 0)]
    return p


def write_all(p):
    for change in p.files:
        pathlib.Path(change.file.path).parent.mkdir(parents=True, exist_ok=True)
        inst.write_managed_file(change.file)


def test_a_new_instance_diff_shows_every_file_with_the_password_masked(layout):
    diffs = units.instance_diffs([planned(layout, rcon_password=SECRET, hostname="Coop")], {})
    assert [d["after_header"] for d in diffs] == [
        layout.env_file("coop1"), layout.instance_cfg("coop1"), layout.mapload_cfg("coop1"),
        layout.dropin_file("coop1")]
    cfg = diffs[1]
    assert cfg["before"] == "" and 'rcon_password "********"' in cfg["after"]
    assert 'hostname "Coop"' in diffs[2]["after"]
    assert SECRET not in json.dumps(diffs)


def test_a_changed_password_shows_neither_the_old_nor_the_new_one(layout):
    write_all(planned(layout, rcon_password=OLD_SECRET))
    diffs = units.instance_diffs([planned(layout, rcon_password=SECRET)], {})
    assert [d["after_header"] for d in diffs] == [layout.instance_cfg("coop1")]
    assert diffs[0]["before"] == units.SECRET_BEFORE
    assert 'rcon_password "********"' in diffs[0]["after"]
    shown = json.dumps(diffs)
    assert SECRET not in shown and OLD_SECRET not in shown


def test_an_unchanged_instance_has_no_diff_and_removal_lists_what_goes(layout):
    write_all(planned(layout, rcon_password=SECRET))
    assert units.instance_diffs([planned(layout, rcon_password=SECRET)], {}) == []
    gone = plan("coop1", actions=["disable", "remove"], layout=layout)
    env = layout.env_file("coop1")
    assert units.instance_diffs([gone], {"coop1": [env]}) == [
        dict(before_header=env, after_header=env, before=f"{env}\n", after="")]


def test_results_report_each_instance_in_order():
    first = plan("a", actions=["enable", "start"], a2s={"map": "c1m1_hotel"})
    second = plan("b", port=27016)
    assert units.instance_results([first, second]) == [
        dict(name="a", unit="left4me-server@a.service", changed=True,
             actions=["enable", "start"], port=27015, manager=None,
             env_file="/etc/left4me/instances/a.env", a2s={"map": "c1m1_hotel"}),
        dict(name="b", unit="left4me-server@b.service", changed=False, actions=[],
             port=27016, manager=None, env_file="/etc/left4me/instances/b.env"),
    ]
