"""Live status of servers: systemd's view (one `info` read per host) and A2S.

Reads change nothing, so they are not jobs; a page should cache them for a few seconds
(one read for all of a host's servers costs an SSH round trip).
"""

from __future__ import annotations

from dataclasses import dataclass

from ansible_collections.left4me.l4d2.plugins.module_utils._a2s import A2SError, query_info

from left4me_ui import authz, host_reads
from left4me_ui.authz import Actor, NotFound
from left4me_ui.core import Core
from left4me_ui.validation import check_name


@dataclass(frozen=True)
class A2SAnswer:
    server_name: str
    map_name: str
    players: int
    max_players: int


@dataclass(frozen=True)
class SystemdState:
    active: str  # active | inactive | failed | activating | unknown ...
    sub: str  # running | dead | failed | auto-restart ...
    result: str  # success | oom-kill | exit-code | start-limit-hit ...

    @property
    def text(self) -> str:
        shown = f"{self.active} ({self.sub})"
        return shown if self.result in ("", "success") else f"{shown}, last result {self.result}"


def _address(core: Core, host: str) -> str:
    hostvars = core.inventory().hostvars.get(host, {})
    return str(hostvars.get("ansible_host") or host)


def a2s_info(core: Core, actor: Actor, server_id: int, timeout: float = 1.0
             ) -> A2SAnswer | None:
    """The server's A2S_INFO answer (map, players/max), or None if it does not answer.

    The server runs its owner's code, so its answer is hostile input: the collection's client
    refuses compressed answers (a bz2 bomb of a few hundred bytes inflates to gigabytes) and
    reads from a connected socket (no other address can answer for the server)."""
    with core.db.connect(write=False) as conn:
        _me, row = authz.visible_server(conn, actor, server_id, "owner_id, host, port")
    try:
        info = query_info(_address(core, row["host"]), row["port"], timeout=timeout)
    except A2SError:
        return None
    return A2SAnswer(info["name"], info["map"], info["players"], info["max_players"])


def systemd_states(core: Core, actor: Actor, host: str, timeout: int = 30
                   ) -> dict[int, SystemdState]:
    """systemd's state of every server on `host` the actor may see: server id -> state.

    One `info` read of the host (host_reads: its left4me-read over the kept SSH connection,
    or srcds_info through Ansible where that is the way); `timeout` bounds the whole read."""
    with core.db.connect(write=False) as conn:
        me = authz.current(conn, actor)
        rows = [r for r in conn.execute("SELECT id, owner_id, name FROM servers WHERE host = ?",
                                        (host,)) if authz.may_view(me, r["owner_id"])]
    if not rows:
        return {}
    run = host_reads.read(core, host, "info", None, {"journal_lines": 0}, timeout)
    if not run.ok:
        raise RuntimeError(f"could not read systemd state on {host}: {run.message}")
    found = {str(i.get("name")): SystemdState(i.get("active_state") or "unknown",
                                              i.get("sub_state") or "unknown",
                                              i.get("result") or "")
             for i in run.result.get("instances") or []}
    return {r["id"]: found.get(check_name(r["name"]), SystemdState("unknown", "unknown", ""))
            for r in rows}


# --- what the server page shows ---------------------------------------------------------------


@dataclass(frozen=True)
class LiveStatus:
    """systemd's state of the server's unit beside its A2S answer, read together."""

    systemd: SystemdState | None  # None: systemd could not be asked (see systemd_error)
    a2s: A2SAnswer | None
    systemd_error: str = ""

    @property
    def summary(self) -> str:
        """One phrase; "running" only when systemd runs the unit AND the server answers."""
        return summarize(self.systemd, self.a2s)


def summarize(unit: SystemdState | None, answer: A2SAnswer | None) -> str:
    if unit is None or unit.active == "unknown":
        return ("state unknown (systemd could not be asked)"
                + ("; it answers A2S" if answer else ""))
    if unit.active == "active" and unit.sub == "running":
        return "running" if answer else "started, not answering A2S (yet)"
    if unit.active == "activating" and unit.sub == "auto-restart":
        return f"restarting after a failure ({unit.result or 'no result'})"
    if unit.active in ("activating", "reloading"):
        return "starting"
    if unit.active == "deactivating":
        return "stopping"
    if unit.active == "failed":
        return f"failed ({unit.result or 'no result'})"
    if unit.active == "inactive":
        return "stopped"
    return unit.text


def live(core: Core, actor: Actor, server_id: int, a2s_timeout: float = 1.0) -> LiveStatus:
    """The server's systemd state and A2S answer (authorized like servers.get)."""
    answer = a2s_info(core, actor, server_id, timeout=a2s_timeout)  # NotFound for others
    with core.db.connect(write=False) as conn:
        host = conn.execute("SELECT host FROM servers WHERE id = ?", (server_id,)).fetchone()
    if host is None:
        raise NotFound("no such server")
    try:
        unit = systemd_states(core, actor, host["host"]).get(server_id)
    except RuntimeError as exc:
        return LiveStatus(None, answer, str(exc))
    return LiveStatus(unit, answer)
