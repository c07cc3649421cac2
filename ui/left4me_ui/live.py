"""Live operations on one server: its RCON console and its journal, read on its host.

Both are reads on the server's host (host_reads): a request to its `left4me-read` over the
UI's kept SSH connection, or where that path is not used, an ad-hoc run of the same code's
module (`left4me.l4d2.rcon`, `left4me.l4d2.server_logs`), the call an operator makes with
`ansible HOST -b -m left4me.l4d2.rcon -a '{"name": ..., "command": "status"}'`. Either
reads the password on the host and talks to 127.0.0.1, so neither the password nor RCON
traffic crosses the network; the SSH connection carries only the command and its output.
The journal is followed: on the fast path one stream per server (log_follow) feeds a buffer
the log panel redraws from, without a request of its own; elsewhere it is read after a
cursor. Console commands are kept per server (who, what, when, how it ended); their output is
shown, never stored: it can hold players' addresses.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from ansible_collections.left4me.l4d2.plugins.module_utils._rcon import (
    RconError,
    validate_command,
)

from left4me_ui import audit, authz, host_reads, log_follow
from left4me_ui.authz import Actor, Forbidden
from left4me_ui.core import Core
from left4me_ui.log_follow import LogView
from left4me_ui.refusal import Refusal
from left4me_ui.runner import ssh_control_dir
from left4me_ui.validation import check_name

CONSOLE_DEADLINE = 30.0  # seconds the whole RCON exchange may take on the host
LOG_PAGE_LINES = 200


class ConsoleError(Refusal):
    """The command did not run; the message is safe to show."""


@dataclass(frozen=True)
class ConsoleAnswer:
    command: str
    output: str
    seconds: float  # the RCON exchange on the host
    round_trip: float  # from asking to the answer: the way to the host included
    fast: bool = True  # over the kept SSH connection (else an Ansible run: slower)


@dataclass(frozen=True)
class ConsoleEntry:
    at: float
    user_name: str
    command: str
    outcome: str  # ok | failed: ...


@dataclass(frozen=True)
class LogPage:
    lines: list[str]
    cursor: str | None  # pass back to read what comes next


def check_command(command: str) -> str:
    """One console line, or ConsoleError saying what is wrong with it: the rcon module's own
    rule and words (the collection's validate_command), which the host applies again."""
    if not command.strip():
        raise ConsoleError("type a command, e.g. status")
    try:
        return validate_command(command.strip())
    except RconError as exc:
        raise ConsoleError(str(exc)) from None


def _server(conn: sqlite3.Connection, actor: Actor, server_id: int, manage: bool
            ) -> sqlite3.Row:
    me, row = authz.visible_server(conn, actor, server_id, "id, owner_id, host, name")
    if manage and not authz.may_manage(me, row["owner_id"]):
        raise Forbidden("only the server's owner and admins may use its console")
    return row


def run_console(core: Core, actor: Actor, server_id: int, command: str,
                deadline: float = CONSOLE_DEADLINE) -> ConsoleAnswer:
    """Run one RCON command on the server (owner or admin); kept in its console history."""
    with core.db.connect() as conn:
        row = _server(conn, actor, server_id, manage=True)
        me = authz.current(conn, actor)
    command = check_command(command)
    name = check_name(row["name"])
    # The read itself gets room beyond the RCON exchange's own deadline to report it.
    asked = time.monotonic()
    run = host_reads.read(core, row["host"], "rcon", name,
                          {"command": command, "timeout": deadline}, deadline + 30)
    round_trip = time.monotonic() - asked
    fast = host_reads.fast(core, row["host"])  # after: a host found without it is remembered
    outcome = "ok" if run.ok else f"failed: {run.message}"
    with core.db.connect() as conn:
        now = time.time()
        conn.execute("INSERT INTO console_history (server_id, user_id, at, command, outcome)"
                     " VALUES (?,?,?,?,?)", (server_id, me.user_id, now, command, outcome))
        audit.record(conn, now, me.name, "console", f"server {row['name']} on {row['host']}",
                     "ok" if run.ok else "failed", command)
    if not run.ok:
        raise ConsoleError(run.message)
    return ConsoleAnswer(command, str(run.result.get("output", "")),
                         float(run.result.get("seconds", 0.0)), round_trip, fast)


def console_history(core: Core, actor: Actor, server_id: int, limit: int = 50
                    ) -> list[ConsoleEntry]:
    """The server's console commands, newest first (owner and admins)."""
    with core.db.connect(write=False) as conn:
        _server(conn, actor, server_id, manage=True)
        rows = conn.execute(
            "SELECT h.at, COALESCE(u.name, '(deleted user)') AS user_name, h.command, h.outcome"
            " FROM console_history h LEFT JOIN users u ON u.id = h.user_id"
            " WHERE h.server_id = ? ORDER BY h.id DESC LIMIT ?", (server_id, limit))
        return [ConsoleEntry(r["at"], r["user_name"], r["command"], r["outcome"])
                for r in rows]


def read_log(core: Core, actor: Actor, server_id: int, cursor: str | None = None,
             lines: int = LOG_PAGE_LINES) -> LogPage:
    """The server's journal: the last `lines` entries, or those after `cursor`."""
    with core.db.connect(write=False) as conn:
        row = _server(conn, actor, server_id, manage=False)
    args: dict[str, object] = {"lines": lines}
    if cursor:
        args["cursor"] = cursor
    run = host_reads.read(core, row["host"], "logs", check_name(row["name"]), args, 30)
    if not run.ok:
        raise ConsoleError(f"could not read the log on {row['host']}: {run.message}")
    return LogPage([str(line) for line in run.result.get("lines") or []],
                   run.result.get("cursor") or cursor)




def follow_log(core: Core, actor: Actor, server_id: int) -> LogView | None:
    """The server's journal as its follower holds it (started by the first look over the
    host's kept SSH connection, stopped when no page looked for a while), checked for this
    person at every look; None where it is read by cursor instead (read_log): the fast path
    is not used for its host, or the host's left4me-read cannot follow."""
    with core.db.connect(write=False) as conn:
        row = _server(conn, actor, server_id, manage=False)
    target = host_reads.target_of(core, row["host"])
    if target is None:
        return None
    name = check_name(row["name"])
    control = ssh_control_dir(core.settings.state_dir)
    follower = log_follow.FOLLOWERS.look(
        (target, control, name),
        lambda: log_follow.ssh_follower(target, control, name, LOG_PAGE_LINES))
    return None if follower.unavailable else follower.look()
