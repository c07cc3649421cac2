"""What the servers are really doing: one `info` read per host (host_reads: srcds_info's report).

The UI's own poller (a thread beside the job worker, every `poll_seconds`) asks each host
with UI servers for every instance's systemd state, A2S answer, players (RCON `status`,
read on the host) and systemd's accounting, and records:
- an observation per server per poll (state, players, memory, CPU): the servers list says
  what is true ("killed: out of memory", "crash loop: gave up after 5 starts"), never
  "running" for a server that is not, and the charts draw from it;
- a change row whenever a server's state differs from its last observation (drift);
- player sessions (join, leave, min/max ping) from who is seated poll after poll;
then, with a Steam Web API key configured, the players' Steam profiles (left4me_ui.profiles).
Observations older than `KEEP_SECONDS` are pruned by the poll itself.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from itertools import pairwise

from left4me_ui import authz, host_reads, profiles
from left4me_ui.authz import Actor, NotFound
from left4me_ui.core import Core

KEEP_SECONDS = 2 * 24 * 3600  # the charts show the last day; keep two
STALE_POLLS = 3  # an observation older than this many intervals is no longer "now"
# The servers list's words for a server that refused the UI's RCON (no players, no console).
RCON_REFUSED = ("RCON refused: its RCON password is not the one left4me set; restart the server"
                " to restore it")
PROFILES = "steam profiles"  # the poller's own step after the hosts (Poller.last_errors key)


@dataclass(frozen=True)
class Observation:
    at: float
    state: str  # srcds_info's state: running, stopped, oom_killed, crash_loop ...
    running: bool
    reason: str  # the state as a person says it
    players: int | None
    max_players: int | None
    memory_bytes: int | None
    cpu_seconds: float | None


@dataclass(frozen=True)
class Change:
    server_id: int
    at: float
    before: str
    after: str
    reason: str


@dataclass(frozen=True)
class PlayerSession:
    name: str
    steam_id: str
    joined_at: float
    left_at: float | None  # None: still on
    last_seen: float
    ping_min: int | None
    ping_max: int | None
    ping_last: int | None
    connected: str  # as status shows it (HH:MM:SS), at the last poll


def cpu_percent(seen: list[Observation]) -> list[tuple[float, float]]:
    """CPU use between successive polls, in % of one core: (time, percent).

    CPUUsageNSec only grows while the server runs; a restart starts it again from zero,
    so a falling counter gives no point rather than a negative one.
    """
    return [(b.at, (b.cpu_seconds - a.cpu_seconds) / (b.at - a.at) * 100)
            for a, b in pairwise(seen)
            if a.cpu_seconds is not None and b.cpu_seconds is not None and b.at > a.at
            and b.cpu_seconds >= a.cpu_seconds]


# --- the poll ---------------------------------------------------------------------------------


def hosts_to_poll(core: Core) -> list[str]:
    with core.db.connect() as conn:
        return [r["host"] for r in conn.execute(
            "SELECT DISTINCT host FROM servers WHERE applied_revision IS NOT NULL"
            " ORDER BY host")]


def poll_host(core: Core, host: str, rcon_refused: dict[str, str] | None = None
              ) -> list[Change]:
    """Ask `host` once; record what its UI servers do; return what changed since last time.

    `rcon_refused` (instance name -> the unit's InvocationID) remembers the servers that
    refused RCON: srcds_info does not ask them again until their unit starts anew (srcds
    bans 127.0.0.1 after repeated failures). It is updated from the answer.
    """
    refused = {} if rcon_refused is None else rcon_refused
    run = host_reads.read(core, host, "info", None,
                          {"players": True, "rcon_refused": dict(refused)}, 120)
    if not run.ok:
        raise RuntimeError(f"srcds_info on {host}: {run.message}")
    instances = run.result.get("instances") or []
    refused.clear()
    refused.update({str(i["name"]): str(i["invocation"]) for i in instances
                    if i.get("rcon_refused") and i.get("invocation")})
    return record(core, host, instances)


def record(core: Core, host: str, instances: list[dict]) -> list[Change]:
    """Store one poll's answer for `host` (srcds_info's `instances`); return the changes."""
    now = core.clock()
    by_name = {str(i.get("name")): i for i in instances}
    changes: list[Change] = []
    with core.db.connect() as conn:
        for row in conn.execute("SELECT id, name FROM servers WHERE host = ?"
                                " AND applied_revision IS NOT NULL", (host,)).fetchall():
            seen = by_name.get(row["name"])
            if seen is None:
                observation = Observation(now, "missing", False,
                                          "not on its host (the host was rebuilt, or it was"
                                          " removed outside left4me)",
                                          None, None, None, None)
            else:
                a2s = seen.get("a2s") or {}
                reason = str(seen.get("reason", ""))
                if seen.get("rcon_refused"):
                    reason += f"; {RCON_REFUSED}"
                observation = Observation(
                    now, str(seen.get("state", "unknown")), bool(seen.get("running")),
                    reason, a2s.get("players"), a2s.get("max_players"),
                    seen.get("memory_bytes"), seen.get("cpu_seconds"))
            change = _store(conn, row["id"], observation)
            if change is not None:
                changes.append(change)
            _seat_players(conn, row["id"], now, (seen or {}).get("players") or [])
        conn.execute("DELETE FROM observations WHERE at < ?", (now - KEEP_SECONDS,))
    return changes


def _store(conn: sqlite3.Connection, server_id: int, seen: Observation) -> Change | None:
    last = conn.execute("SELECT state FROM observations WHERE server_id = ?"
                        " ORDER BY id DESC LIMIT 1", (server_id,)).fetchone()
    conn.execute(
        "INSERT INTO observations (server_id, at, state, running, reason, players,"
        " max_players, memory_bytes, cpu_seconds) VALUES (?,?,?,?,?,?,?,?,?)",
        (server_id, seen.at, seen.state, int(seen.running), seen.reason, seen.players,
         seen.max_players, seen.memory_bytes, seen.cpu_seconds))
    if last is None or last["state"] == seen.state:
        return None
    conn.execute("INSERT INTO server_changes (server_id, at, before, after, reason)"
                 " VALUES (?,?,?,?,?)", (server_id, seen.at, last["state"], seen.state,
                                         seen.reason))
    return Change(server_id, seen.at, last["state"], seen.state, seen.reason)


def player_key(player: dict) -> str:
    """Who a `status` row is, for session tracking. A SteamID Steam validated is the person.
    Anything else (`STEAM_ID_PENDING` while Steam checks a joining client's ticket,
    `STEAM_ID_LAN`, none) says nothing about who: several such rows look alike but for their
    userid, which srcds gives each connection and never reuses while it runs, so that
    connection is keyed by userid and name."""
    steam_id = str(player.get("steam_id") or "")
    if profiles.steam_id64(steam_id) is not None:
        return steam_id
    return f"#{player.get('userid')} {player.get('name') or ''}"


def _seat_players(conn: sqlite3.Connection, server_id: int, now: float,
                  players: list[dict]) -> None:
    """Open, extend and close player sessions from who `status` shows now (bots skipped)."""
    humans = {player_key(p): p for p in players
              if not p.get("bot") and (p.get("steam_id") or p.get("name"))}
    open_rows = {r["player_key"]: r for r in conn.execute(
        "SELECT * FROM player_sessions WHERE server_id = ? AND left_at IS NULL", (server_id,))}
    for key, player in humans.items():
        unvalidated = f"#{player.get('userid')} {player.get('name') or ''}"
        if key not in open_rows and unvalidated in open_rows and key != unvalidated:
            # Steam validated this connection since the last poll: same session, now its id.
            row = open_rows.pop(unvalidated)
            conn.execute("UPDATE player_sessions SET player_key = ?, steam_id = ? WHERE id = ?",
                         (key, player.get("steam_id") or "", row["id"]))
            open_rows[key] = row
        ping = player.get("ping")
        if key in open_rows:
            conn.execute(
                "UPDATE player_sessions SET last_seen = ?, name = ?, ping_last = ?,"
                " ping_min = MIN(COALESCE(ping_min, ?), ?), ping_max = MAX(COALESCE(ping_max, ?),"
                " ?), connected = ? WHERE id = ?",
                (now, player.get("name", ""), ping, ping, ping, ping, ping,
                 str(player.get("connected", "")), open_rows[key]["id"]))
        else:
            joined = now - float(player.get("connected_seconds") or 0)
            conn.execute(
                "INSERT INTO player_sessions (server_id, player_key, name, steam_id, joined_at,"
                " last_seen, ping_min, ping_max, ping_last, connected)"
                " VALUES (?,?,?,?,?,?,?,?,?,?)",
                (server_id, key, player.get("name", ""), player.get("steam_id") or "", joined,
                 now, ping, ping, ping, str(player.get("connected", ""))))
    for key, row in open_rows.items():
        if key not in humans:  # gone since the last poll: left at the last sighting
            conn.execute("UPDATE player_sessions SET left_at = last_seen WHERE id = ?",
                         (row["id"],))


class Poller:
    """A daemon thread polling every host with UI servers every `interval` seconds."""

    def __init__(self, core: Core, interval: float) -> None:
        self.core, self.interval = core, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="left4me-poller", daemon=True)
        self.last_errors: dict[str, str] = {}
        self.rcon_refused: dict[str, dict[str, str]] = {}  # host -> poll_host's memory

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            for host in hosts_to_poll(self.core):
                try:
                    poll_host(self.core, host, self.rcon_refused.setdefault(host, {}))
                    self.last_errors.pop(host, None)
                except Exception as failed:  # noqa: BLE001 - a host down must not end polling
                    self.last_errors[host] = str(failed)
            self.refresh_profiles()

    def refresh_profiles(self) -> None:
        """Steam names and avatars of who was seen (off without a key; failures recorded)."""
        try:
            profiles.refresh(self.core)
            self.last_errors.pop(PROFILES, None)
        except Exception as failed:  # noqa: BLE001 - a bug here must not end polling either
            self.last_errors[PROFILES] = str(failed)


# --- reads for the pages ----------------------------------------------------------------------


def _visible_server(conn: sqlite3.Connection, actor: Actor, server_id: int) -> None:
    me = authz.current(conn, actor)
    row = conn.execute("SELECT owner_id FROM servers WHERE id = ?", (server_id,)).fetchone()
    if row is None or not authz.may_view(me, row["owner_id"]):
        raise NotFound("no such server")


def _observation(row: sqlite3.Row) -> Observation:
    return Observation(row["at"], row["state"], bool(row["running"]), row["reason"],
                       row["players"], row["max_players"], row["memory_bytes"],
                       row["cpu_seconds"])


def latest(core: Core, actor: Actor) -> dict[int, Observation]:
    """The newest observation of every server the actor may see (if it is recent)."""
    fresh_after = core.clock() - STALE_POLLS * core.settings.poll_seconds
    with core.db.connect() as conn:
        me = authz.current(conn, actor)
        clause, args = authz.visible_owner_clause(me)
        rows = conn.execute(
            "SELECT o.* FROM observations o JOIN servers s ON s.id = o.server_id"
            f" WHERE o.id IN (SELECT MAX(id) FROM observations GROUP BY server_id) AND {clause}"
            " AND o.at >= ?", (*args, fresh_after)).fetchall()
    return {r["server_id"]: _observation(r) for r in rows}


def history(core: Core, actor: Actor, server_id: int, seconds: float = 24 * 3600
            ) -> list[Observation]:
    """The server's observations of the last `seconds`, oldest first (for charts)."""
    with core.db.connect() as conn:
        _visible_server(conn, actor, server_id)
        rows = conn.execute("SELECT * FROM observations WHERE server_id = ? AND at >= ?"
                            " ORDER BY id", (server_id, core.clock() - seconds)).fetchall()
    return [_observation(r) for r in rows]


def changes(core: Core, actor: Actor, server_id: int, limit: int = 50) -> list[Change]:
    with core.db.connect() as conn:
        _visible_server(conn, actor, server_id)
        rows = conn.execute("SELECT * FROM server_changes WHERE server_id = ?"
                            " ORDER BY id DESC LIMIT ?", (server_id, limit)).fetchall()
    return [Change(r["server_id"], r["at"], r["before"], r["after"], r["reason"])
            for r in rows]


def sessions(core: Core, actor: Actor, server_id: int, limit: int = 100
             ) -> list[PlayerSession]:
    """Who is on now (left_at None) and who was, newest first."""
    with core.db.connect() as conn:
        _visible_server(conn, actor, server_id)
        rows = conn.execute("SELECT * FROM player_sessions WHERE server_id = ?"
                            " ORDER BY left_at IS NOT NULL, joined_at DESC LIMIT ?",
                            (server_id, limit)).fetchall()
    return [PlayerSession(r["name"], r["steam_id"], r["joined_at"], r["left_at"],
                          r["last_seen"], r["ping_min"], r["ping_max"], r["ping_last"],
                          r["connected"]) for r in rows]
