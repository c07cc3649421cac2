# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the ``srcds_instance`` module decides about units, waits and output.

The module gathers facts (``systemctl show`` properties, mount state, which
files exist), calls these pure functions and then carries out their answer:

* :func:`unit_actions`: which of ``enable``, ``start``, ``restart``, ``disable``,
  ``stop``, ``unmount`` and ``remove`` one instance needs for the wanted state;
* :func:`probe_targets` and :func:`await_answers`: where to send A2S_INFO and
  what every started server answered, or why it did not;
* :func:`instance_diffs` and :func:`instance_results`: what ``--diff`` and the
  result show (the RCON password never: the instance cfg diff is masked and the
  previous content of a file holding a secret is not shown).

Standard library only (these run on the managed host).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from ansible_collections.left4me.l4d2.plugins.module_utils._a2s import wait_for_info
from ansible_collections.left4me.l4d2.plugins.module_utils._instance import InstancePlan
from ansible_collections.left4me.l4d2.plugins.module_utils._layout import server_unit_name

UNIT_FAILED = "the unit failed"
SECRET_BEFORE = "(previous content not shown: it holds a secret)\n"
STARTING = frozenset({"start", "restart"})


# --- unit state ---------------------------------------------------------------------


def is_running(props: Mapping[str, str]) -> bool:
    """Serving, or on its way to it (not a restart after a failure)."""
    active, sub = props.get("ActiveState"), props.get("SubState")
    if active == "activating":
        return sub != "auto-restart"
    return active in ("active", "reloading")


def is_enabled(props: Mapping[str, str]) -> bool:
    return props.get("UnitFileState") in ("enabled", "enabled-runtime")


def is_serving(props: Mapping[str, str]) -> bool:
    return props.get("ActiveState") in ("active", "reloading")


def is_failed(props: Mapping[str, str]) -> bool:
    return props.get("ActiveState") == "failed"


# --- the decision ---------------------------------------------------------------------


def unit_actions(
    state: str,
    props: Mapping[str, str],
    *,
    config_changed: bool = False,
    restart_on_change: bool = True,
    mounted: bool = False,
    leftovers: bool = False,
) -> list[str]:
    """The unit actions one instance needs, in the order they are carried out.

    ``props`` are the unit's ``systemctl show`` properties; ``mounted`` says its
    overlay is mounted and ``leftovers`` that files ``absent`` deletes exist
    (both only matter for ``stopped`` and ``absent``). ``present`` touches no unit.
    """
    running, enabled = is_running(props), is_enabled(props)
    actions: list[str] = []
    if state in ("started", "restarted"):
        if not enabled:
            actions.append("enable")
        if state == "restarted" or (running and config_changed and restart_on_change):
            actions.append("restart")
        elif not running:
            actions.append("start")
    elif state in ("stopped", "absent"):
        if enabled:
            actions.append("disable")
        if running or props.get("ActiveState") in ("activating", "deactivating"):
            actions.append("stop")
        # Stopping runs the unit's own unmount (ExecStopPost); only a mount left
        # behind by a stopped unit needs one of its own.
        if mounted and "stop" not in actions:
            actions.append("unmount")
        if state == "absent" and leftovers:
            actions.append("remove")
    return actions


def needs_reset(props: Mapping[str, str], actions: Sequence[str]) -> bool:
    """A unit about to be started on request has its failure and start counters cleared.

    systemd counts every start, an operator's too, against the crash-loop cap
    (StartLimitBurst in StartLimitIntervalSec): without the reset a sixth restart
    asked for within a minute would be refused with start-limit-hit.
    """
    if not STARTING & set(actions):
        return False
    # A unit systemd holds in memory: failed, or running (a restart). An inactive one may be
    # unloaded, and reset-failed refuses a unit that is not loaded ("Unit ... not loaded").
    return is_failed(props) or props.get("ActiveState") in ("active", "activating", "reloading")


# What systemctl show must read for the decisions here (srcds_instance asks for these).
UNIT_PROPERTIES = (
    "Id", "ActiveState", "SubState", "UnitFileState", "NeedDaemonReload", "InvocationID",
    "Result", "ExecMainStartTimestampMonotonic",
)


def start_failed(props: Mapping[str, str], started_us: int = 0) -> bool:
    """After ``systemctl start|restart`` failed: did the unit fail, or is systemd retrying?

    A start can fail before the server runs for a reason systemd retries itself
    (Restart=on-failure), e.g. 'resources': PID 1 racing the removal of the
    previous run's cgroup on a quick restart. Such a unit is activating again
    (auto-restart, then start-pre): not failed yet; the A2S wait decides, and its
    journal excerpt says why the server exits if it keeps exiting. So does a unit
    whose server process ran since the start (``ExecMainStartTimestampMonotonic``,
    in microseconds, at or after ``started_us``): the server ran and exited, and a
    retry after a 'resources' failure may have got that far by the time we look.
    A start refused before the server ran (a refused mount in ExecStartPre:
    'exit-code', no server process since) is failed at once, with its reason.
    """
    active = props.get("ActiveState")
    if active in ("active", "reloading"):
        return False
    if active != "activating":
        return True
    if props.get("SubState") != "auto-restart" or props.get("Result") == "resources":
        return False
    server_ran = int(props.get("ExecMainStartTimestampMonotonic") or 0)
    return not (started_us and server_ran >= started_us)


def needs_daemon_reload(plans: Sequence[InstancePlan], states: Mapping[str, Mapping]) -> bool:
    """A drop-in was written or removed, or systemd says its view of a unit is stale."""
    dropins = any(
        c.changed and c.file.path.endswith(".conf") for p in plans for c in p.files
    ) or any("remove" in p.actions for p in plans)
    return dropins or any(s.get("NeedDaemonReload") == "yes" for s in states.values())


def having(plans: Sequence[InstancePlan], action: str) -> list[str]:
    """The units of the plans that take ``action``."""
    return [server_unit_name(p.name) for p in plans if action in p.actions]


def starting(plans: Sequence[InstancePlan]) -> list[InstancePlan]:
    return [p for p in plans if STARTING & set(p.actions)]


# --- waiting for A2S_INFO -------------------------------------------------------------


def probe_targets(
    plans: Sequence[InstancePlan],
    probe_address: str | None,
    host_address: Callable[[], str],
) -> dict[str, tuple[str, int]]:
    """``name: (address, port)`` to query; a wildcard bind is probed on ``host_address()``,
    asked at most once."""
    fallback: list[str] = []
    targets = {}
    for plan in plans:
        address = probe_address or plan.ip
        if not address or address in ("0.0.0.0", "::"):
            if not fallback:
                fallback.append(host_address())
            address = fallback[0]
        targets[plan.name] = (address, plan.port)
    return targets


def await_answers(
    targets: Mapping[str, tuple[str, int]],
    retries: int,
    timeout: float,
    unit_states: Callable[[list[str]], Mapping[str, Mapping[str, str]]],
    wait: Callable = wait_for_info,
) -> tuple[dict[str, dict], dict[str, str]]:
    """Query every server at once, round after round: ``retries x timeout`` at most.

    ``unit_states(names)`` returns ``name: systemctl show properties``; a server
    whose unit failed is not waited for. Returns ``(answers, failures)``:
    ``name: A2S_INFO dict`` (with ``address``) and ``name: why it did not answer``.
    """

    def units_that_failed(pending: list[str]) -> dict[str, str]:
        states = unit_states(pending)
        return {n: UNIT_FAILED for n in pending if is_failed(states[n])}

    answers, failures = wait(dict(targets), retries, timeout, units_that_failed)
    for name, info in answers.items():
        info["address"] = targets[name][0]
    # Out of retries: say where each unit stands now (a crash loop may have just ended).
    silent = [n for n, why in failures.items() if why != UNIT_FAILED]
    states = unit_states(silent) if silent else {}
    for name in silent:
        failures[name] = silence_reason(failures[name], states[name])
    return answers, failures


def silence_reason(reason: str, props: Mapping[str, str]) -> str:
    """Why a server that ran out of retries did not answer, given its unit's state now."""
    if is_failed(props):
        return UNIT_FAILED
    if props.get("SubState") == "auto-restart":
        return f"{reason}; the unit is restarting after a failure"
    return reason


def no_answer_message(
    failures: Mapping[str, str],
    targets: Mapping[str, tuple[str, int]],
    journal_reasons: Mapping[str, str],
) -> str:
    return "; ".join(
        f"instance {name!r} did not answer A2S_INFO on {targets[name][0]}:"
        f"{targets[name][1]} ({failures[name]}); journal of {server_unit_name(name)}:"
        f" {journal_reasons[name]}"
        for name in sorted(failures)
    )


# --- what the run shows ---------------------------------------------------------------


def instance_results(plans: Sequence[InstancePlan]) -> list[dict]:
    out = []
    for plan in plans:
        entry = dict(
            name=plan.name,
            unit=server_unit_name(plan.name),
            changed=plan.changed,
            actions=list(plan.actions),
            port=plan.port,
            manager=plan.manager,
            env_file=plan.layout.env_file(plan.name),
        )
        if plan.a2s:
            entry["a2s"] = plan.a2s
        out.append(entry)
    return out


def file_diff(change) -> dict:
    """One changed file as a diff; a file holding a secret shows its masked form only."""
    wanted = change.file
    before = change.before
    if wanted.diff_content is not None and before is not None:
        before = SECRET_BEFORE
    after = wanted.diff_content if wanted.diff_content is not None else wanted.content
    return dict(
        before_header=wanted.path,
        after_header=wanted.path,
        before=before or "",
        after=after or "",
    )


def instance_diffs(
    plans: Sequence[InstancePlan], removed: Mapping[str, Sequence[str]]
) -> list[dict]:
    """The ``--diff`` of every plan; ``removed`` lists, per name, the existing paths
    ``absent`` deletes."""
    shown = []
    for plan in plans:
        shown.extend(file_diff(c) for c in plan.files if c.content_changed)
        if "remove" in plan.actions:
            shown.extend(
                dict(before_header=path, after_header=path, before=f"{path}\n", after="")
                for path in removed.get(plan.name, ())
            )
    return shown
