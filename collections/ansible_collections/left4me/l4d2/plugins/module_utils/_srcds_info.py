# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# Shipped to hosts verbatim: standard library only (tests/collection/test_host_libraries.py).
"""Where each game server instance stands, from systemd's own properties, stdlib only.

``systemctl show`` gives a unit's state, the result of its last run, how often it was
restarted and what it uses. :func:`classify` turns them (and the unit's last journal
lines, which name an OOM kill or a failed ExecStartPre) into one state a person
reads: never "running" for a server that is not.

The game unit runs ``Restart=on-failure`` with ``StartLimitBurst=5`` in 60 s: a crash
is restarted; five failed starts in a row end as ``failed`` with the result
``start-limit-hit``. A unit stopped with ``systemctl stop`` while still enabled was
stopped outside left4me (left4me stops with ``disable --now``).

The srcds_info module only gathers (``systemctl show``, env files, the journal, A2S and
RCON answers); which instances it reports, what it asks and how answers land in a report
are decided here (:func:`select_names`, :func:`needs_journal`, :func:`a2s_targets`,
:func:`record_a2s`, :func:`record_status`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from ansible_collections.left4me.l4d2.plugins.module_utils._common import (
    Left4meError,
    validate_id,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._layout import server_unit_name

TYPE_CHECKING = False  # typing's own TYPE_CHECKING would cost typing's import
if TYPE_CHECKING:  # for annotations only
    from ansible_collections.left4me.l4d2.plugins.module_utils._a2s import A2SError

# The journal's, A2S's and status's code is imported where it is used: the console imports
# this module (classify) on every request to left4me-read and needs none of them.

# What systemctl show must read for classify and instance_info (srcds_info and rcon ask these).
SHOW_PROPERTIES = (
    "Id", "LoadState", "ActiveState", "SubState", "Result", "UnitFileState", "NRestarts",
    "MemoryCurrent", "CPUUsageNSec", "ExecMainCode", "ExecMainStatus", "StartLimitBurst",
    "StartLimitIntervalUSec", "ActiveEnterTimestamp", "InvocationID",
)
# systemd prints these for a value it does not have (no accounting, no controller).
UNSET_VALUES = ("", "[not set]", "18446744073709551615", "infinity")
ENABLED_STATES = ("enabled", "enabled-runtime")
# Exit codes of the kernel's wait status: CLD_EXITED, CLD_KILLED, CLD_DUMPED.
CLD_EXITED, CLD_KILLED, CLD_DUMPED = 1, 2, 3
SIGNAL_NAMES = {
    1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 6: "SIGABRT", 7: "SIGBUS",
    8: "SIGFPE", 9: "SIGKILL", 11: "SIGSEGV", 13: "SIGPIPE", 15: "SIGTERM",
}
_OOM_RE = re.compile(r"killed by the OOM killer|oom-kill|Out of memory", re.I)
# ExecStartPre (the overlay mount) failed: the helper's own refusal, or a control process that
# exited with an error. "Control process exited, code=killed" is not one: systemd 257 logs it
# for ExecStopPost when a kill of the unit's cgroup ends it with the server.
_CONTROL_FAILED_RE = re.compile(r"Control process exited, code=exited|^left4me-mount:")
_MAIN_EXITED_RE = re.compile(r"Main process exited")
# systemd 257 keeps the last run's Result (signal, exit-code ...) when it refuses a restart
# and says so only in the journal; older releases set Result=start-limit-hit.
_START_LIMIT_RE = re.compile(r"Start request repeated too quickly")
_INTERVAL_RE = re.compile(r"^(?:(\d+)min)?\s*(?:(\d+)s)?$")
MAX_JOURNAL_LINES = 1000
# Journal lines read for a server that is not running, whatever journal_lines returns:
# enough to see how its last runs ended (classify reads them).
CLASSIFY_LINES = 30
A2S_KEYS = ("name", "map", "players", "max_players")

RUNNING = "running"
STARTING = "starting"
RESTARTING = "restarting"
STOPPING = "stopping"
STOPPED = "stopped"
STOPPED_OUTSIDE = "stopped_outside_left4me"
OOM_KILLED = "oom_killed"
CRASH_LOOP = "crash_loop"
FAILED_AT_START = "failed_at_start"
FAILED = "failed"
NOT_INSTALLED = "not_installed"
STATES = (RUNNING, STARTING, RESTARTING, STOPPING, STOPPED, STOPPED_OUTSIDE, OOM_KILLED,
          CRASH_LOOP, FAILED_AT_START, FAILED, NOT_INSTALLED)


class InfoError(Left4meError):
    """A request srcds_info refuses; the message says what is wrong."""


def accounted(value: str | None) -> int | None:
    """A systemd counter, or None when the host does not account it."""
    if value is None or value.strip() in UNSET_VALUES:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def interval_seconds(usec_text: str | None) -> int | None:
    """``StartLimitIntervalUSec`` as systemd prints it (``1min``, ``1min 30s``, ``10s``)."""
    match = _INTERVAL_RE.match((usec_text or "").strip())
    if not match or not any(match.groups()):
        return None
    return int(match.group(1) or 0) * 60 + int(match.group(2) or 0)


def how_it_ended(props: dict[str, str]) -> str:
    """The main process's end, as a person says it (``killed by SIGSEGV``)."""
    code, status = props.get("ExecMainCode", "0"), props.get("ExecMainStatus", "0")
    if not (code.isdigit() and status.isdigit()):
        return ""
    if int(code) == CLD_EXITED:
        return f"exited with status {status}"
    if int(code) in (CLD_KILLED, CLD_DUMPED):
        name = SIGNAL_NAMES.get(int(status), f"signal {status}")
        return f"killed by {name}" + (" (core dumped)" if int(code) == CLD_DUMPED else "")
    return ""


@dataclass
class UnitState:
    state: str
    running: bool
    reason: str


def classify(props: dict[str, str], journal_messages: Sequence[str] = ()) -> UnitState:
    """One state and a sentence for a unit, from ``systemctl show`` and its last lines."""
    active = props.get("ActiveState", "")
    sub = props.get("SubState", "")
    result = props.get("Result", "")
    enabled = props.get("UnitFileState", "") in ENABLED_STATES
    restarts = accounted(props.get("NRestarts")) or 0
    oom = result == "oom-kill" or any(_OOM_RE.search(m) for m in journal_messages)
    control_failed = any(_CONTROL_FAILED_RE.search(m) for m in journal_messages) and not any(
        _MAIN_EXITED_RE.search(m) for m in journal_messages)
    gave_up = result == "start-limit-hit" or any(
        _START_LIMIT_RE.search(m) for m in journal_messages)
    ended = how_it_ended(props)
    if props.get("LoadState") == "not-found":
        return UnitState(NOT_INSTALLED, False, "the unit template is not installed"
                         " (role left4me.l4d2.game_instances)")
    if active == "active" and sub == "running":
        return UnitState(RUNNING, True, f"running (restarted {restarts} times)" if restarts
                         else RUNNING)
    if active in ("activating", "reloading") and sub == "auto-restart":
        why = "out of memory" if oom else (ended or result or "a failure")
        return UnitState(RESTARTING, False,
                         f"restarting after {why} (restart {restarts + 1})")
    if active in ("activating", "reloading"):
        return UnitState(STARTING, False, "starting")
    if active == "deactivating":
        return UnitState(STOPPING, False, "stopping")
    if active == "failed":
        if gave_up:
            burst = props.get("StartLimitBurst", "")
            interval = interval_seconds(props.get("StartLimitIntervalUSec"))
            within = f" within {interval} s" if interval else ""
            cause = "out of memory" if oom else ("failed at start" if control_failed
                                                 else ended or "crashed")
            return UnitState(CRASH_LOOP, False,
                             f"crash loop: gave up after {burst or 'too many'} starts{within}"
                             f" ({cause})")
        if oom:
            return UnitState(OOM_KILLED, False, "killed: out of memory")
        if control_failed:
            return UnitState(FAILED_AT_START, False,
                             "failed at start (before the server ran: see the journal)")
        return UnitState(FAILED, False, f"failed: {ended or result or 'unknown result'}")
    if active == "inactive":
        if oom:
            return UnitState(OOM_KILLED, False, "killed: out of memory")
        if enabled:
            return UnitState(STOPPED_OUTSIDE, False,
                             "stopped outside left4me (the unit is still enabled: stopped by"
                             " hand, or the server quit on its own)")
        return UnitState(STOPPED, False, STOPPED)
    return UnitState(FAILED, False, f"unknown state {active}/{sub}")


@dataclass
class InstanceInfo:
    name: str
    unit: str
    port: int | None
    ip: str | None
    state: str
    running: bool
    reason: str
    active_state: str
    sub_state: str
    result: str
    enabled: bool
    restarts: int
    memory_bytes: int | None
    cpu_seconds: float | None
    not_accounted: list[str]
    mounted: bool
    merged: str
    journal: list[str] = field(default_factory=list)
    a2s: dict | None = None
    a2s_error: str | None = None
    players: list[dict] | None = None
    players_error: str | None = None
    status_problems: list[str] = field(default_factory=list)
    invocation: str = ""  # systemd's InvocationID: a new one at every start of the unit
    rcon_refused: bool = False  # the server refused left4me's RCON password in this run

    def as_dict(self) -> dict:
        return asdict(self)


def instance_info(name: str, env: dict[str, str], props: dict[str, str], mounted: bool,
                  merged: str, journal_messages: Sequence[str] = (),
                  journal_lines: int = 10) -> InstanceInfo:
    """What systemd, the env file and the mount table say about one instance (the journal
    messages explain the state; the last ``journal_lines`` of them are returned)."""
    unit_state = classify(props, journal_messages)
    memory = accounted(props.get("MemoryCurrent"))
    cpu = accounted(props.get("CPUUsageNSec"))
    port = env.get("LEFT4ME_PORT", "")
    return InstanceInfo(
        name=name,
        unit=server_unit_name(name, InfoError),
        port=int(port) if port.isdigit() else None,
        ip=env.get("LEFT4ME_IP"),
        state=unit_state.state,
        running=unit_state.running,
        reason=unit_state.reason,
        active_state=props.get("ActiveState", ""),
        sub_state=props.get("SubState", ""),
        result=props.get("Result", ""),
        enabled=props.get("UnitFileState", "") in ENABLED_STATES,
        restarts=accounted(props.get("NRestarts")) or 0,
        memory_bytes=memory,
        cpu_seconds=None if cpu is None else round(cpu / 1e9, 3),
        not_accounted=[what for what, value in (("memory", memory), ("cpu", cpu))
                       if value is None],
        mounted=mounted,
        merged=merged,
        journal=list(journal_messages)[-journal_lines:]
        if journal_lines and not unit_state.running else [],
        invocation=props.get("InvocationID", ""),
    )


def probe_address(ip: str | None) -> str:
    """Where the host itself reaches a server: loopback when it binds every address."""
    if not ip or ip in ("0.0.0.0", "::"):
        return "127.0.0.1"
    return ip


def configured_names(instances_dir: str) -> list[str]:
    """Instance names with an env file (``NAME.env``) in ``instances_dir``, sorted."""
    try:
        entries = os.listdir(instances_dir)
    except FileNotFoundError:
        return []
    return sorted(e[: -len(".env")] for e in entries if e.endswith(".env") and len(e) > 4)


def param_problem(journal_lines: int, a2s_timeout: float, rcon_timeout: float) -> str | None:
    """Why srcds_info refuses these bounds, or None."""
    if not 0 <= journal_lines <= MAX_JOURNAL_LINES:
        return f"journal_lines must be between 0 and {MAX_JOURNAL_LINES}"
    if a2s_timeout <= 0 or rcon_timeout <= 0:
        return "a2s_timeout and rcon_timeout must be above 0"
    return None


def _is_instance_name(name: str) -> bool:
    try:
        validate_id(name, "instance name", InfoError)
    except InfoError:
        return False
    return True


def select_names(found: Sequence[str], wanted: Sequence[str] | None,
                 instances_dir: str) -> list[str]:
    """The instances to report, sorted: every configured one (``found``: the env files'
    names, see :func:`configured_names`; a name left4me would not write is skipped), or
    the ``wanted`` ones, each of which must be configured (else InfoError, naming them)."""
    configured = [name for name in found if _is_instance_name(name)]
    if wanted is None:
        return configured
    for name in wanted:
        validate_id(name, "instance name", InfoError)
    unknown = [name for name in wanted if name not in configured]
    if unknown:
        raise InfoError(
            f"not configured on this host: {', '.join(unknown)} (no"
            f" {instances_dir}/NAME.env); configured: {', '.join(configured) or 'none'}"
        )
    return sorted(set(wanted))


def needs_journal(props: dict[str, str]) -> bool:
    """Whether the unit's journal is read: it explains a server that is not active."""
    return props.get("ActiveState") != "active"


def journal_argv(name: str, journal_lines: int) -> list[str]:
    """The journalctl call for a server that is not running: the lines :func:`classify`
    reads (CLASSIFY_LINES) or the ``journal_lines`` returned, whichever are more."""
    from ansible_collections.left4me.l4d2.plugins.module_utils._journal import journalctl_argv

    return journalctl_argv(server_unit_name(name, InfoError), max(journal_lines, CLASSIFY_LINES))


def journal_messages(journalctl_output: str, password: str | None) -> list[str]:
    """The messages of ``journalctl -o json`` output, the RCON password and any password
    cvar masked (a cfg echoed into the log)."""
    from ansible_collections.left4me.l4d2.plugins.module_utils._journal import (
        entry_message,
        mask_secrets,
        parse_json_lines,
    )

    return [mask_secrets(entry_message(entry).strip(), [password or ""])
            for entry in parse_json_lines(journalctl_output)]


def answers_queries(info: InstanceInfo) -> bool:
    """Whether A2S and RCON are asked: only a running server with a known port answers."""
    return info.running and bool(info.port)


def refused_before(info: InstanceInfo, rcon_refused: dict[str, str]) -> bool:
    """Whether the server refused RCON earlier in this run of its unit (``rcon_refused``:
    name -> the InvocationID it refused in). Asking again only earns the host a ban."""
    return bool(info.invocation) and rcon_refused.get(info.name) == info.invocation


def a2s_targets(infos: Sequence[InstanceInfo]) -> dict[str, tuple[str, int]]:
    """Where the host asks A2S_INFO, by instance name (see :func:`probe_address`)."""
    return {info.name: (probe_address(info.ip), info.port)
            for info in infos if answers_queries(info)}


def record_a2s(info: InstanceInfo, answer: dict | A2SError | None) -> None:
    """An A2S_INFO answer (its name, map and player counts) or why there was none; no
    entry (``None``: the server was not asked) leaves both unset."""
    if answer is None:
        return
    from ansible_collections.left4me.l4d2.plugins.module_utils._a2s import A2SError

    if isinstance(answer, A2SError):
        info.a2s_error = str(answer)
    else:
        info.a2s = {key: answer.get(key) for key in A2S_KEYS}


def record_status(info: InstanceInfo, output: str) -> None:
    """The players of an RCON ``status`` answer, and the rows that did not parse."""
    from ansible_collections.left4me.l4d2.plugins.module_utils._srcds_status import parse_status

    report = parse_status(output)
    info.players = [player.__dict__ for player in report.players]
    info.status_problems = report.problems
