"""Is a server up the way players see it? A2S answers, decided beside systemd's state.

A server can be `active (running)` in systemd and dead to players: hung in a plugin's loop,
stuck loading a map. srcds answers A2S (and RCON) from its main loop, and loading a map
runs in that loop, so a healthy server is silent while it starts and while it changes maps
(standins/README.md, "Map loads and hangs"; LinuxGSM's monitor waits out 60 s of silence
for the same reason). So a server is **down** only when its unit is active, it is past its
grace after start and after a map change, and A2S has been silent at every probe for
`down_after` seconds, counted from the first unanswered probe (so the silence is at least
that long, whatever the probes' spacing).

The pure part (:func:`assess`, :func:`restart_allowed`) decides from one probe (the unit's
state and run, whether A2S answered and with which map, a map change the UI asked for)
and what the check carried from the probes before (:class:`Watch`). :class:`HealthCheck`
(a thread beside the poller, every `health_seconds`) probes every host with UI servers at
once (one `info` read per host, no RCON), stores each server's watch, appends a decision
row whenever a server's health changes (with its evidence and what was done), and for a
server whose owner chose the `restart` action, restarts it as an ordinary job on the
owner's behalf, at most `health_restarts_per_hour` times an hour; past that it is left
down and the decision says so. Alerts are not sent here: decisions that call for one have
`notify` set, and :func:`notifications` hands them out after a cursor (the alert work's
hook).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace

from left4me_ui import audit, authz, host_reads, servers
from left4me_ui.authz import Actor, Forbidden, NotFound
from left4me_ui.core import Core
from left4me_ui.validation import InstanceError

HEALTHY, UNANSWERED, STARTING, LOADING_MAP, DOWN, NOT_RUNNING = (
    "healthy", "unanswered", "starting", "loading_map", "down", "not_running")
ACTIONS = ("none", "restart")
HOUR = 3600.0
# A map change asked for in the console (its first word): the UI knows a load began.
MAP_COMMANDS = ("changelevel", "map")
A2S_TIMEOUT = 2.0  # seconds a probe waits for A2S_INFO (LinuxGSM's gsquery waits 5)
READ_TIMEOUT = 30  # seconds one host's read may take in all


@dataclass(frozen=True)
class Policy:
    """When silence is down: `down_after` seconds of it, outside the grace periods."""

    down_after: float = 60.0
    start_grace: float = 120.0
    map_grace: float = 120.0
    restarts_per_hour: int = 3


@dataclass(frozen=True)
class Probe:
    """One look at one server: what systemd and A2S said at `at`."""

    at: float
    unit_active: bool  # systemd runs the unit (srcds_info's `running`)
    invocation: str  # systemd's InvocationID: new at every start of the unit
    answered: bool  # A2S_INFO answered
    map_name: str = ""
    map_change_asked_at: float | None = None  # the latest changelevel/map the UI ran


@dataclass(frozen=True)
class Watch:
    """What the check carries from one probe of a server to the next."""

    invocation: str = ""
    started_at: float | None = None  # when the check first saw this run of the unit
    last_answer_at: float | None = None
    last_map: str = ""
    silent_since: float | None = None  # the first unanswered probe after the last answer
    map_change_at: float | None = None  # a map change in this run (asked, or seen by A2S)


@dataclass(frozen=True)
class Verdict:
    state: str
    since: float | None  # down: the silence's start; grace: when it ends
    silent_for: float | None  # seconds since the first unanswered probe
    grace_until: float | None


def assess(watch: Watch, probe: Probe, policy: Policy) -> tuple[Watch, Verdict]:
    """The server's health at `probe.at`, and the watch to carry to the next probe."""
    if not probe.unit_active:
        return Watch(), Verdict(NOT_RUNNING, None, None, None)
    if probe.invocation != watch.invocation or watch.started_at is None:
        watch = Watch(invocation=probe.invocation, started_at=probe.at)
    asked = probe.map_change_asked_at
    if asked is not None and asked >= watch.started_at and (
            watch.map_change_at is None or asked > watch.map_change_at):
        watch = replace(watch, map_change_at=asked)
    if probe.answered:
        changed = bool(watch.last_map) and probe.map_name != watch.last_map
        watch = replace(watch, last_answer_at=probe.at, last_map=probe.map_name,
                        silent_since=None,
                        map_change_at=probe.at if changed else watch.map_change_at)
        return watch, Verdict(HEALTHY, None, None, None)
    silent_since = watch.silent_since if watch.silent_since is not None else probe.at
    watch = replace(watch, silent_since=silent_since)
    silent_for = probe.at - silent_since
    start_grace = watch.started_at + policy.start_grace
    if probe.at < start_grace:
        return watch, Verdict(STARTING, start_grace, silent_for, start_grace)
    if watch.map_change_at is not None and probe.at < watch.map_change_at + policy.map_grace:
        until = watch.map_change_at + policy.map_grace
        return watch, Verdict(LOADING_MAP, until, silent_for, until)
    if silent_for >= policy.down_after:
        return watch, Verdict(DOWN, silent_since, silent_for, None)
    return watch, Verdict(UNANSWERED, silent_since, silent_for, None)


def restart_allowed(action: str, restarts_in_last_hour: int, policy: Policy
                    ) -> tuple[bool, str]:
    """Whether a server just found down is restarted, and what the decision says."""
    if action != "restart":
        return False, "no action (the server's health action is none)"
    if restarts_in_last_hour >= policy.restarts_per_hour:
        return False, (f"left down: restarted {restarts_in_last_hour} of"
                       f" {policy.restarts_per_hour} times this hour already")
    return True, ""


def utc_time(at: float) -> str:
    return time.strftime("%H:%M:%S UTC", time.gmtime(at))


def describe(verdict: Verdict, watch: Watch, show: Callable[[float], str] = utc_time) -> str:
    """The health as a person reads it (times through `show`)."""
    silent = f"A2S silent for {verdict.silent_for:.0f} s" if verdict.silent_for else ""
    if verdict.state == HEALTHY:
        return "healthy: answers A2S"
    if verdict.state == NOT_RUNNING:
        return "not running (see its state)"
    if verdict.state == STARTING:
        return f"starting: grace until {show(verdict.grace_until)}" + (
            f" ({silent} so far)" if silent else "")
    if verdict.state == LOADING_MAP:
        return f"loading a map: grace until {show(verdict.grace_until)}" + (
            f" ({silent} so far)" if silent else "")
    last = (f"last answer {show(watch.last_answer_at)}" if watch.last_answer_at is not None
            else "no answer since its start")
    if verdict.state == DOWN:
        return (f"down since {show(verdict.since)}: {silent} while the unit is active;"
                f" {last}")
    return f"not answering A2S since {show(verdict.since)} ({last})"


# --- the check against the hosts ---------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    id: int
    server_id: int
    at: float
    state: str
    since: float | None
    text: str
    evidence: dict
    action: str
    job_id: int | None
    notify: bool


def policy_of(core: Core) -> Policy:
    s = core.settings
    return Policy(float(s.health_down_after), float(s.health_start_grace),
                  float(s.health_map_grace), int(s.health_restarts_per_hour))


def hosts_to_check(core: Core) -> list[str]:
    with core.db.connect() as conn:
        return [r["host"] for r in conn.execute(
            "SELECT DISTINCT host FROM servers WHERE applied_revision IS NOT NULL"
            " AND deleting = 0 ORDER BY host")]


def read_host(core: Core, host: str) -> list[dict]:
    """One `info` read of the host: systemd's state and the A2S answer of every server."""
    run = host_reads.read(core, host, "info", None,
                          {"journal_lines": 0, "a2s_timeout": A2S_TIMEOUT}, READ_TIMEOUT)
    if not run.ok:
        raise RuntimeError(f"srcds_info on {host}: {run.message}")
    return list(run.result.get("instances") or [])


def _watch(row: sqlite3.Row | None) -> Watch:
    if row is None:
        return Watch()
    return Watch(row["invocation"], row["started_at"], row["last_answer_at"], row["last_map"],
                 row["silent_since"], row["map_change_at"])


def _map_change_asked(conn: sqlite3.Connection, server_id: int) -> float | None:
    rows = conn.execute("SELECT at, command FROM console_history WHERE server_id = ?"
                        " ORDER BY id DESC LIMIT 20", (server_id,)).fetchall()
    for row in rows:
        words = row["command"].split()
        if words and words[0].lower() in MAP_COMMANDS and len(words) > 1:
            return float(row["at"])
    return None


def _busy(conn: sqlite3.Connection, server_id: int) -> bool:
    """A job acts on the server now (its own restart among them): the check waits for it."""
    return conn.execute("SELECT 1 FROM jobs WHERE server_id = ? AND state IN"
                        " ('queued', 'running') LIMIT 1", (server_id,)).fetchone() is not None


@dataclass(frozen=True)
class _Found:
    server_id: int
    owner_id: int
    target: str
    action: str
    watch: Watch
    verdict: Verdict
    previous: str | None  # the health at the check before (None: never checked)


def record(core: Core, host: str, instances: list[dict]) -> list[Decision]:
    """Decide every UI server on `host` from one read; store, act, return new decisions."""
    now = core.clock()
    policy = policy_of(core)
    by_name = {str(i.get("name")): i for i in instances}
    found: list[_Found] = []
    with core.db.connect() as conn:
        rows = conn.execute(
            "SELECT s.id, s.owner_id, s.host, s.name, s.health_action, w.*, w.server_id AS seen"
            " FROM servers s LEFT JOIN health_watch w ON w.server_id = s.id"
            " WHERE s.host = ? AND s.applied_revision IS NOT NULL AND s.deleting = 0",
            (host,)).fetchall()
        for row in rows:
            if _busy(conn, row["id"]):
                continue
            seen = by_name.get(row["name"]) or {}
            probe = Probe(now, bool(seen.get("running")), str(seen.get("invocation") or ""),
                          bool(seen.get("a2s")), str((seen.get("a2s") or {}).get("map") or ""),
                          _map_change_asked(conn, row["id"]))
            watch, verdict = assess(_watch(row if row["seen"] is not None else None), probe,
                                    policy)
            previous = row["state"] if row["seen"] is not None else None
            conn.execute(
                "INSERT INTO health_watch (server_id, invocation, started_at, last_answer_at,"
                " last_map, silent_since, map_change_at, state, text, checked_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT (server_id) DO UPDATE SET"
                " invocation = excluded.invocation, started_at = excluded.started_at,"
                " last_answer_at = excluded.last_answer_at, last_map = excluded.last_map,"
                " silent_since = excluded.silent_since, map_change_at = excluded.map_change_at,"
                " state = excluded.state, text = excluded.text, checked_at = excluded.checked_at",
                (row["id"], watch.invocation, watch.started_at, watch.last_answer_at,
                 watch.last_map, watch.silent_since, watch.map_change_at, verdict.state,
                 describe(verdict, watch), now))
            found.append(_Found(row["id"], row["owner_id"], f"{row['host']}/{row['name']}",
                                row["health_action"], watch, verdict, previous))
    return [_decide(core, policy, item, now) for item in found
            if item.previous != item.verdict.state]


def _restarts_in_last_hour(core: Core, server_id: int, now: float) -> int:
    with core.db.connect() as conn:
        return conn.execute("SELECT COUNT(*) FROM health_decisions WHERE server_id = ?"
                            " AND job_id IS NOT NULL AND at > ?",
                            (server_id, now - HOUR)).fetchone()[0]


def _restart(core: Core, item: _Found, policy: Policy, now: float) -> tuple[str, int | None]:
    done = _restarts_in_last_hour(core, item.server_id, now)
    allowed, why = restart_allowed(item.action, done, policy)
    if not allowed:
        return why, None
    try:
        with core.db.connect() as conn:
            owner = authz.owner_actor(conn, item.owner_id)
        job_id = servers.restart(core, owner, item.server_id)  # its own audited job
    except (Forbidden, NotFound, InstanceError, ValueError) as refused:
        return f"not restarted: {refused}", None
    return (f"restarted (job {job_id}) on behalf of {owner.name}: {done + 1} of"
            f" {policy.restarts_per_hour} this hour"), job_id


def _decide(core: Core, policy: Policy, item: _Found, now: float) -> Decision:
    action, job_id = "", None
    if item.verdict.state == DOWN:
        action, job_id = _restart(core, item, policy, now)
    evidence = {"watch": asdict(item.watch), "verdict": asdict(item.verdict),
                "policy": asdict(policy)}
    text = describe(item.verdict, item.watch)
    # News for the owner (the alert hook): found down, and back after being down.
    notify = item.verdict.state == DOWN or (item.previous == DOWN
                                            and item.verdict.state == HEALTHY)
    with core.db.connect() as conn:
        cursor = conn.execute(
            "INSERT INTO health_decisions (server_id, at, state, since, text, evidence, action,"
            " job_id, notify) VALUES (?,?,?,?,?,?,?,?,?)",
            (item.server_id, now, item.verdict.state, item.verdict.since, text,
             json.dumps(evidence, sort_keys=True), action, job_id, int(notify)))
        if item.verdict.state == DOWN:
            audit.record(conn, now, "health check", "health decision", item.target,
                         "down", f"{text}; {action}")
    return Decision(int(cursor.lastrowid), item.server_id, now, item.verdict.state,
                    item.verdict.since, text, evidence, action, job_id, notify)


def check_host(core: Core, host: str) -> list[Decision]:
    return record(core, host, read_host(core, host))


class HealthCheck:
    """A daemon thread checking every host with UI servers every `interval` seconds, the
    hosts side by side (each read is one SSH round trip and one A2S wait)."""

    def __init__(self, core: Core, interval: float, workers: int = 16) -> None:
        self.core, self.interval, self.workers = core, interval, workers
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="left4me-health", daemon=True)
        self.last_errors: dict[str, str] = {}

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def check_all(self) -> list[Decision]:
        hosts = hosts_to_check(self.core)
        if not hosts:
            return []
        decisions: list[Decision] = []
        with ThreadPoolExecutor(max_workers=min(self.workers, len(hosts))) as pool:
            for host, outcome in zip(hosts, pool.map(self._check, hosts), strict=True):
                if isinstance(outcome, Exception):
                    self.last_errors[host] = str(outcome)
                else:
                    self.last_errors.pop(host, None)
                    decisions.extend(outcome)
        return decisions

    def _check(self, host: str) -> list[Decision] | Exception:
        try:
            return check_host(self.core, host)
        except Exception as failed:  # noqa: BLE001 - a host down must not end the checks
            return failed

    def _loop(self) -> None:
        # Rounds start every `interval` (a round's own time is not added to the spacing):
        # a hang is decided at most one interval plus down_after after it, plus one read.
        next_round = time.monotonic() + self.interval
        while not self._stop.wait(max(0.0, next_round - time.monotonic())):
            next_round = max(next_round + self.interval, time.monotonic())
            try:
                self.check_all()
                self.last_errors.pop("", None)
            except Exception as failed:  # noqa: BLE001 - a bug here must not end the checks
                self.last_errors[""] = str(failed)


# --- reads for the pages and the alert work ------------------------------------------------------


def _decision(row: sqlite3.Row) -> Decision:
    return Decision(row["id"], row["server_id"], row["at"], row["state"], row["since"],
                    row["text"], json.loads(row["evidence"]), row["action"], row["job_id"],
                    bool(row["notify"]))


@dataclass(frozen=True)
class Health:
    """A server's health as the page shows it."""

    state: str
    checked_at: float | None
    text: str
    action: str  # the server's setting: none | restart
    restarts_this_hour: int
    restarts_per_hour: int
    latest: Decision | None  # the newest decision (its action: what was done)

    @property
    def line(self) -> str:
        """The health, and what was done about it ("...; restarted 1 of 3 this hour")."""
        if self.state == DOWN and self.latest is not None and self.latest.state == DOWN \
                and self.latest.action:
            return f"{self.text}; {self.latest.action}"
        if self.restarts_this_hour:
            return (f"{self.text}; restarted {self.restarts_this_hour} of"
                    f" {self.restarts_per_hour} this hour")
        return self.text


def for_server(core: Core, actor: Actor, server_id: int) -> Health:
    with core.db.connect(write=False) as conn:
        _me, row = authz.visible_server(conn, actor, server_id, "owner_id, health_action")
        watch = conn.execute("SELECT * FROM health_watch WHERE server_id = ?",
                             (server_id,)).fetchone()
        latest = conn.execute("SELECT * FROM health_decisions WHERE server_id = ?"
                              " ORDER BY id DESC LIMIT 1", (server_id,)).fetchone()
        restarts = conn.execute("SELECT COUNT(*) FROM health_decisions WHERE server_id = ?"
                                " AND job_id IS NOT NULL AND at > ?",
                                (server_id, core.clock() - HOUR)).fetchone()[0]
    decision = _decision(latest) if latest is not None else None
    if watch is None:
        return Health("unknown", None, "not checked yet", row["health_action"], restarts,
                      policy_of(core).restarts_per_hour, decision)
    return Health(watch["state"], watch["checked_at"], watch["text"], row["health_action"],
                  restarts, policy_of(core).restarts_per_hour, decision)


def decisions(core: Core, actor: Actor, server_id: int, limit: int = 20) -> list[Decision]:
    with core.db.connect(write=False) as conn:
        authz.visible_server(conn, actor, server_id, "owner_id")
        rows = conn.execute("SELECT * FROM health_decisions WHERE server_id = ?"
                            " ORDER BY id DESC LIMIT ?", (server_id, limit)).fetchall()
    return [_decision(r) for r in rows]


def set_action(core: Core, actor: Actor, server_id: int, action: str) -> None:
    """The owner's (or an admin's) choice of what the check does to a down server."""
    if action not in ACTIONS:
        raise ValueError(f"health action must be one of {', '.join(ACTIONS)}, not {action!r}")
    with core.db.connect() as conn:
        me = authz.current(conn, actor)
        row = conn.execute("SELECT owner_id, host, name, health_action FROM servers"
                           " WHERE id = ?", (server_id,)).fetchone()
        if row is None or not authz.may_view(me, row["owner_id"]):
            raise NotFound("no such server")
        if not authz.may_manage(me, row["owner_id"]):
            raise Forbidden("only the server's owner or an admin may change its health action")
        if row["health_action"] == action:
            return
        conn.execute("UPDATE servers SET health_action = ? WHERE id = ?", (action, server_id))
        audit.record(conn, core.clock(), me.name, "set health action",
                     f"{row['host']}/{row['name']}", "ok", f"{row['health_action']} -> {action}")


def notifications(core: Core, after_id: int = 0, limit: int = 500) -> list[Decision]:
    """Decisions that call for telling the owner, after the consumer's cursor (the alert
    work's hook: it keeps the last id it delivered). Oldest first."""
    with core.db.connect() as conn:
        rows = conn.execute("SELECT * FROM health_decisions WHERE notify = 1 AND id > ?"
                            " ORDER BY id LIMIT ?", (after_id, limit)).fetchall()
    return [_decision(r) for r in rows]
