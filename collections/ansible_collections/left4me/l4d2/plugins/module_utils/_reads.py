# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# Shipped to hosts verbatim: standard library only (tests/collection/test_host_libraries.py).
"""The three reads, whole: what the srcds_info, rcon and server_logs modules do, stdlib only.

Each module parses its arguments, checks it runs as root and calls one function here
(:func:`read_info`, :func:`plan_rcon` then :func:`send_rcon`, :func:`read_logs`); the host's
``left4me-read`` entry point (role game_instances, see ``_read_request``) calls the same
functions, so both paths refuse the same requests with the same messages and answer with the
same result. Commands (``systemctl``, ``journalctl``) run through a ``Runner``: the module's
``run_command``, or :func:`run_argv` on the host. ``ARGUMENTS`` is each read's argument
spec (besides the instance and the paths), which the modules and the entry point share.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ansible_collections.left4me.l4d2.plugins.module_utils._common import (
    DEFAULT_CONFIG_DIR,
    DEFAULT_STATE_DIR,
)

TYPE_CHECKING = False  # typing's own TYPE_CHECKING would cost typing's import
if TYPE_CHECKING:  # names for annotations only
    from ansible_collections.left4me.l4d2.plugins.module_utils._rcon import Target
    from ansible_collections.left4me.l4d2.plugins.module_utils._srcds_info import InstanceInfo

# The entry point starts once per request (the console's round trip, P8), so each read
# imports what it needs when it runs, here in its functions: a console command never loads
# the mount table's, the journal's or A2S's code. Modules (Ansible bundles function-level
# imports too) and the entry point still run these same functions.

# argv -> (rc, stdout, stderr), run with LANG=C.
Runner = Callable[[Sequence[str]], "tuple[int, str, str]"]

# Each read's arguments besides the instance name(s), state_dir and config_dir: the
# modules' argument specs are built from these, and the entry point checks requests by them.
ARGUMENTS = {
    "info": dict(
        players=dict(type="bool", default=False),
        journal_lines=dict(type="int", default=10),
        a2s_timeout=dict(type="float", default=1.0),
        rcon_timeout=dict(type="float", default=5.0),
        rcon_refused=dict(type="dict", default={}),
    ),
    "rcon": dict(
        command=dict(type="str", required=True),
        timeout=dict(type="float", default=30.0),
    ),
    "logs": dict(
        lines=dict(type="int", default=100),
        cursor=dict(type="str"),
        max_bytes=dict(type="int", default=262144),
    ),
}


def argument_spec(verb: str) -> dict:
    """The read module's argument spec for ``verb``: the instance (``names`` for info, which
    reads several), the verb's ``ARGUMENTS`` and the host's directories."""
    instance = (dict(names=dict(type="list", elements="str")) if verb == "info"
                else dict(name=dict(type="str", required=True)))
    return dict(**instance, **ARGUMENTS[verb],
                state_dir=dict(type="path", default=DEFAULT_STATE_DIR),
                config_dir=dict(type="path", default=DEFAULT_CONFIG_DIR))


class ReadError(Exception):
    """A refused or failed read: ``msg`` for a person, ``fields`` added to the result
    (``address``, ``state``) as the modules' ``fail_json`` adds them."""

    def __init__(self, msg: str, **fields: object) -> None:
        super().__init__(msg)
        self.fields = fields


def run_argv(argv: Sequence[str]) -> tuple[int, str, str]:
    """Run a command with LANG=C (the entry point's runner; modules pass run_command)."""
    import subprocess

    from ansible_collections.left4me.l4d2.plugins.module_utils._common import LANG_C

    done = subprocess.run(list(argv), capture_output=True, text=True, check=False,
                          env={**os.environ, **LANG_C}, errors="surrogateescape")
    return done.returncode, done.stdout, done.stderr


def require_root(needs_root: str) -> None:
    """ReadError ``needs_root`` (the caller's sentence: how to run it as root) unless root;
    checked after the request's own checks, so a bad request is named as such first."""
    if os.geteuid() != 0:
        raise ReadError(needs_root)


def _systemctl_show(run: Runner, names: Sequence[str], **fields: object) -> dict:
    from ansible_collections.left4me.l4d2.plugins.module_utils._layout import server_unit_name
    from ansible_collections.left4me.l4d2.plugins.module_utils._srcds_info import SHOW_PROPERTIES
    from ansible_collections.left4me.l4d2.plugins.module_utils._systemd import parse_show, show_argv

    rc, out, err = run(show_argv([server_unit_name(n) for n in names], SHOW_PROPERTIES))
    if rc != 0:
        raise ReadError(f"systemctl show failed (rc {rc}): {err.strip()}", **fields)
    return parse_show(out)


# --- info: every instance on the host (srcds_info) --------------------------------------


def read_env(path: str) -> dict[str, str]:
    """The instance's env file; empty when it is missing or does not parse."""
    from ansible_collections.left4me.l4d2.plugins.module_utils._common import read_text
    from ansible_collections.left4me.l4d2.plugins.module_utils._layout import parse_env

    try:
        return parse_env(read_text(path) or "", path, ReadError)
    except ReadError:
        return {}


def gather(run: Runner, name: str, props: dict[str, str], mountinfo: str,
           journal_lines: int, state_dir: str, config_dir: str,
           ) -> tuple[InstanceInfo, str | None]:
    """One instance as systemd, its env file, the mount table and (for a server that is not
    running) its journal say; and its RCON password, read on the host."""
    from ansible_collections.left4me.l4d2.plugins.module_utils._layout import (
        env_file_path,
        instance_paths,
    )
    from ansible_collections.left4me.l4d2.plugins.module_utils._mount import mount_state
    from ansible_collections.left4me.l4d2.plugins.module_utils._rcon import (
        RconError,
        instance_password,
    )
    from ansible_collections.left4me.l4d2.plugins.module_utils._srcds_info import (
        instance_info,
        journal_argv,
        journal_messages,
        needs_journal,
    )

    env = read_env(env_file_path(name, config_dir))
    paths = instance_paths(name, state_dir)
    unreadable = None
    try:
        password = instance_password(name, state_dir)
    except RconError as exc:
        password, unreadable = None, str(exc)  # said instead of asking; the rest is reported
    messages = []
    if needs_journal(props):
        _rc, out, _err = run(journal_argv(name, journal_lines))
        messages = journal_messages(out, password)
    info = instance_info(name, env, props, mount_state(paths.merged, mountinfo).mounted,
                         paths.merged, messages, journal_lines)
    info.players_error = unreadable
    return info, password


def ask_players(infos: list[tuple[InstanceInfo, str | None]], timeout: float,
                rcon_refused: dict[str, str]) -> None:
    """RCON ``status`` of each running server, one after the other; one login each, and
    none for a server that refused it earlier in the same run."""
    from ansible_collections.left4me.l4d2.plugins.module_utils._rcon import (
        AUTH_FAILED_MESSAGE,
        RconAuthError,
        RconError,
        refused_in_this_run,
        remember_refusal,
        run_command,
    )
    from ansible_collections.left4me.l4d2.plugins.module_utils._srcds_info import (
        answers_queries,
        probe_address,
        record_status,
        refused_before,
    )

    for info, password in infos:
        if not answers_queries(info) or info.players_error:
            continue
        refused = refused_before(info, rcon_refused)
        if refused or refused_in_this_run(info.name, info.invocation):
            info.rcon_refused = True
            info.players_error = f"not asked again: {AUTH_FAILED_MESSAGE}"
            continue
        try:
            output, _seconds = run_command(info.port, password or "", "status", timeout,
                                           probe_address(info.ip))
        except RconAuthError as exc:
            info.rcon_refused = bool(password)  # without one, srcds was never going to agree
            info.players_error = str(exc)
            if password:
                remember_refusal(info.name, info.invocation)  # the console asks no more either
        except RconError as exc:
            info.players_error = str(exc)
        else:
            record_status(info, output)


def read_info(run: Runner, names: Sequence[str] | None, params: dict, state_dir: str,
              config_dir: str, needs_root: str) -> list[dict]:
    """srcds_info's report: the instances ``names`` (None: every configured one), with the
    bounds and options of ``params`` (``ARGUMENTS["info"]``)."""
    from ansible_collections.left4me.l4d2.plugins.module_utils._a2s import query_many
    from ansible_collections.left4me.l4d2.plugins.module_utils._layout import (
        INSTANCES_DIR,
        server_unit_name,
    )
    from ansible_collections.left4me.l4d2.plugins.module_utils._mount import mountinfo_path
    from ansible_collections.left4me.l4d2.plugins.module_utils._srcds_info import (
        InfoError,
        a2s_targets,
        configured_names,
        param_problem,
        record_a2s,
        select_names,
    )

    problem = param_problem(params["journal_lines"], params["a2s_timeout"],
                            params["rcon_timeout"])
    if problem:
        raise ReadError(problem)
    require_root(needs_root)
    instances_dir = os.path.join(config_dir, INSTANCES_DIR)
    try:
        names = select_names(configured_names(instances_dir), names, instances_dir)
    except InfoError as exc:
        raise ReadError(str(exc)) from None
    if not names:
        return []
    shown = _systemctl_show(run, names)
    with open(mountinfo_path(1), encoding="utf-8", errors="surrogateescape") as handle:
        mountinfo = handle.read()
    infos = [gather(run, name, shown.get(server_unit_name(name), {"LoadState": "not-found"}),
                    mountinfo, params["journal_lines"], state_dir, config_dir)
             for name in names]
    targets = a2s_targets([info for info, _password in infos])
    answers = query_many(targets, params["a2s_timeout"]) if targets else {}
    for info, _password in infos:
        record_a2s(info, answers.get(info.name))
    if params["players"]:
        ask_players(infos, params["rcon_timeout"],
                    {str(k): str(v) for k, v in params["rcon_refused"].items()})
    return [info.as_dict() for info, _password in infos]


# --- rcon: one console command (rcon) ---------------------------------------------------


@dataclass(frozen=True)
class RconPlan:
    """What is sent where: checked, with the password read on the host (never shown)."""

    name: str
    target: Target
    invocation: str
    password: str


def plan_rcon(run: Runner, name: str, command: str, timeout: float, state_dir: str,
              config_dir: str, needs_root: str) -> RconPlan:
    """Everything the rcon module checks before sending: the request, the instance, that
    its unit runs and has not refused the password in this run, and its password."""
    from ansible_collections.left4me.l4d2.plugins.module_utils._common import read_text
    from ansible_collections.left4me.l4d2.plugins.module_utils._layout import (
        env_file_path,
        server_unit_name,
    )
    from ansible_collections.left4me.l4d2.plugins.module_utils._rcon import (
        RconError,
        instance_cfg_path,
        instance_password,
        no_password_message,
        not_asked_message,
        not_running_message,
        refused_in_this_run,
        target_of,
        validate_request,
    )
    from ansible_collections.left4me.l4d2.plugins.module_utils._srcds_info import classify

    try:
        validate_request(name, command, timeout)
    except RconError as exc:
        raise ReadError(str(exc)) from None
    require_root(needs_root)
    try:
        env_file = env_file_path(name, config_dir)
        target = target_of(name, env_file, read_text(env_file))
    except RconError as exc:
        raise ReadError(str(exc)) from None
    props = _systemctl_show(run, [name], address=target.where).get(server_unit_name(name), {})
    unit_state = classify(props)
    if not unit_state.running:
        raise ReadError(not_running_message(name, unit_state), address=target.where,
                        state=unit_state.state)
    invocation = props.get("InvocationID", "")
    if refused_in_this_run(name, invocation):
        raise ReadError(not_asked_message(name), address=target.where)
    try:
        password = instance_password(name, state_dir)
    except RconError as exc:
        raise ReadError(str(exc), address=target.where) from None
    if not password:
        raise ReadError(no_password_message(name, instance_cfg_path(name, state_dir)),
                        address=target.where)
    return RconPlan(name, target, invocation, password)


def send_rcon(plan: RconPlan, command: str, timeout: float) -> dict:
    """Send the command once; a refused login is remembered so no path asks again in this
    run of the server."""
    from ansible_collections.left4me.l4d2.plugins.module_utils._rcon import (
        RconAuthError,
        RconError,
        remember_refusal,
        run_command,
    )

    try:
        output, seconds = run_command(plan.target.port, plan.password, command, timeout,
                                      plan.target.address)
    except RconAuthError as exc:
        remember_refusal(plan.name, plan.invocation)  # no path on this host asks again
        raise ReadError(f"instance {plan.name!r}: {exc}", address=plan.target.where) from None
    except RconError as exc:
        raise ReadError(f"instance {plan.name!r}: {exc}", address=plan.target.where) from None
    return dict(changed=True, output=output, stdout_lines=output.splitlines(),
                seconds=seconds, address=plan.target.where)


# --- logs: a unit's journal (server_logs) -----------------------------------------------


def log_secrets(name: str, state_dir: str) -> list[str]:
    """What a log page masks besides password cvars: the instance's RCON password."""
    from ansible_collections.left4me.l4d2.plugins.module_utils._rcon import (
        RconError,
        instance_password,
    )

    try:
        return [s for s in (instance_password(name, state_dir),) if s]
    except RconError:
        return []  # password cvars in messages are still masked by their name


def read_logs(run: Runner, name: str, params: dict, state_dir: str, config_dir: str,
              needs_root: str) -> dict:
    """server_logs' page: the last ``lines`` entries, or those after ``cursor``."""
    from ansible_collections.left4me.l4d2.plugins.module_utils._journal import (
        JournalError,
        journalctl_argv,
        page,
        parse_json_lines,
    )
    from ansible_collections.left4me.l4d2.plugins.module_utils._layout import (
        env_file_path,
        server_unit_name,
    )

    try:
        unit = server_unit_name(name, JournalError)
        argv = journalctl_argv(unit, params["lines"], params["cursor"])
    except JournalError as exc:
        raise ReadError(str(exc)) from None
    if params["max_bytes"] < 1024:
        raise ReadError("max_bytes must be at least 1024")
    require_root(needs_root)
    configured = os.path.exists(env_file_path(name, config_dir))
    rc, out, err = run(argv)
    if rc != 0:
        hint = ""
        if params["cursor"] and "cursor" in err.lower():
            hint = " (the cursor is not one of this host's journal: start again without cursor)"
        raise ReadError(f"journalctl failed (rc {rc}): {err.strip()}{hint}")
    entries = parse_json_lines(out)
    if not entries and not configured and not params["cursor"]:
        raise ReadError(f"instance {name!r} is not configured on this host and its unit"
                        f" {unit} has no journal entries")
    result = page(entries, params["lines"], params["cursor"], params["max_bytes"],
                  log_secrets(name, state_dir))
    return dict(changed=False, unit=unit, entries=result.entries,
                lines=result.lines, cursor=result.cursor, more=result.more,
                truncated_lines=result.truncated_lines)
