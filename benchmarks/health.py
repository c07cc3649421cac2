"""Health by A2S (left4me_ui.health): how soon a hang is decided, and what a round costs.

    .venv/bin/python benchmarks/health.py [--section hang|scale|all] [--interval 15]

`hang` (about 100 s, no test host) runs three srcds stand-ins on loopback and the UI's own
health check (health.record on a scratch database, with the UI's default policy: down
after 60 s of silence, 120 s of grace after a start and after a map change) probing them
every --interval seconds with the A2S client srcds_info uses:
  - `hung`: answering, then RCON `sim_hang` (alive, silent for good); its owner chose
    "restart": printed is the time from the hang to "down" decided and its restart job
    queued (goal: the owner knows within 90 s);
  - `slow-console`: `changelevel` with a 90 s map load, run as the UI's console runs it
    (so the check knows a load began): goal never down, no restart;
  - `slow-ingame`: `changelevel` with a 45 s map load the UI does not know of (a vote, the
    next chapter): goal never down, no restart.
The on-host version (the real units, the real read over SSH) is
tests/ui/domain/test_health_on_host.py.

`scale` times the decisions of one round for 200 servers on 20 hosts from synthetic reads:
the pure `assess` alone, and `health.record` (the database included) host by host; the
reads themselves are one `info` request per host, side by side (P8's fast path is ~0.2 s,
plus at most the 2 s A2S wait), so a round of reads is bounded by the slowest host.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(PROJECT), str(PROJECT / "collections"), str(PROJECT / "ui"),
                str(PROJECT / "tests" / "standins")]

from ansible_collections.left4me.l4d2.plugins.module_utils._a2s import (  # noqa: E402
    A2SError,
    query_many,
)
from rcon.source import Client  # noqa: E402
from standin_harness import (  # noqa: E402
    LOOPBACK,
    StandinProcess,
    free_port,
    make_game_root,
    standin_env,
    wait_until_answering,
)

from left4me_ui import accounts, blueprints, boot, health, servers  # noqa: E402
from left4me_ui import settings as settings_module  # noqa: E402
from left4me_ui.authz import Actor  # noqa: E402
from left4me_ui.inventory import Inventory  # noqa: E402

HOST = "bench"
INVENTORY = Inventory({HOST: {"ansible_host": LOOPBACK, "overlays_list": [
    {"id": "bench-config", "kind": "files", "users_may_stack": True}]}})
PASSWORD = "bench-rcon"


def scratch_core(directory: Path, hosts: list[str] | None = None):
    secret = directory / "secret"
    settings_module.write_new_secret(secret)
    config = settings_module.Settings(state_dir=directory / "state", secret_file=secret,
                                      inventory=directory / "inventory.yml", fast_reads=False,
                                      port_range=(20000, 29999))
    inventory = Inventory({h: INVENTORY.hostvars[HOST] for h in (hosts or [HOST])})
    return boot.open_core(config, inventory_loader=lambda _path: inventory)


def owner(core) -> Actor:
    with core.db.connect() as conn:
        user_id = accounts._insert_user(conn, core.clock(), "owner",
                                        accounts.hash_password("bench-password"), "admin")
    return Actor(user_id, "owner", "admin")


def deploy(core, actor: Actor, host: str, name: str, blueprint_id: int,
           port: int | None = None) -> int:
    server_id = servers.create(core, actor, name, host, blueprint_id)[0]
    with core.db.connect() as conn:
        if port is not None:
            conn.execute("UPDATE servers SET port = ? WHERE id = ?", (port, server_id))
        conn.execute("UPDATE servers SET applied_revision = 1 WHERE id = ?", (server_id,))
        conn.execute("UPDATE jobs SET state = 'succeeded' WHERE state = 'queued'")
    return server_id


def rcon(port: int, command: str, timeout: float = 5) -> str:
    with Client(LOOPBACK, port, passwd=PASSWORD, timeout=timeout) as client:
        return client.run(command)


# --- hang ----------------------------------------------------------------------------------------


def start_standin(root: Path, port: int) -> StandinProcess:
    make_game_root(root, f'rcon_password "{PASSWORD}"\n')
    argv = [sys.executable, "-m", "standins.srcds", "-game", "left4dead2", "-port", str(port),
            "+map", "c1m1_hotel", "+clientport", str(free_port()), "-nohltv"]
    process = StandinProcess(argv, root, standin_env())
    wait_until_answering((LOOPBACK, port), process)
    return process


def section_hang(interval: float) -> list[str]:
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        core = scratch_core(directory)
        actor = owner(core)
        blueprint = blueprints.create(core, actor, "bench", ["bench-config"],
                                      blueprints.BlueprintSettings())
        names = ("hung", "slow-console", "slow-ingame")
        ports = {name: free_port() for name in names}
        processes = {name: start_standin(directory / name, ports[name]) for name in names}
        ids = {name: deploy(core, actor, HOST, name, blueprint.id, ports[name])
               for name in names}
        health.set_action(core, actor, ids["hung"], "restart")
        health.set_action(core, actor, ids["slow-ingame"], "restart")
        health.set_action(core, actor, ids["slow-console"], "restart")
        try:
            return _run_hang(core, actor, interval, ports, ids)
        finally:
            for process in processes.values():
                process.stop()


def _read(ports: dict[str, int]) -> list[dict]:
    """What srcds_info reports for the stand-ins: their units run; did A2S answer?"""
    answers = query_many({name: (LOOPBACK, port) for name, port in ports.items()},
                         health.A2S_TIMEOUT)
    return [{"name": name, "running": True, "invocation": "bench-run",
             "a2s": None if isinstance(answers[name], A2SError)
             else {"map": answers[name]["map"]}} for name in ports]


def _run_hang(core, actor: Actor, interval: float, ports: dict[str, int],
              ids: dict[str, int]) -> list[str]:
    # Past the start grace: the servers have run a while (their watch says so).
    health.record(core, HOST, _read(ports))
    with core.db.connect() as conn:
        conn.execute("UPDATE health_watch SET started_at = started_at - 600")
    rcon(ports["slow-console"], "sim_map_load_seconds 90")
    rcon(ports["slow-ingame"], "sim_map_load_seconds 45")
    with core.db.connect() as conn:  # as live.run_command records a console command
        conn.execute("INSERT INTO console_history (server_id, user_id, at, command, outcome)"
                     " VALUES (?, ?, ?, 'changelevel c2m1_highway', 'ok')",
                     (ids["slow-console"], actor.user_id, core.clock()))
    rcon(ports["slow-console"], "changelevel c2m1_highway")
    rcon(ports["slow-ingame"], "changelevel c3m1_plankcountry")
    hung_at = time.time()
    threading.Thread(target=_hang, args=(ports["hung"],), daemon=True).start()
    seen: dict[str, list[str]] = {name: [] for name in ports}
    decided_down: float | None = None
    restart_job = None
    deadline = hung_at + 110
    while time.time() < deadline:
        for decision in health.record(core, HOST, _read(ports)):
            name = next(n for n, i in ids.items() if i == decision.server_id)
            seen[name].append(decision.state)
            if name == "hung" and decision.state == health.DOWN:
                decided_down, restart_job = time.time(), decision.job_id
        time.sleep(max(0.0, interval - (time.time() % interval)))
    with core.db.connect() as conn:
        queued = {r["server_id"] for r in conn.execute("SELECT server_id FROM jobs WHERE"
                                                      " kind = 'server restart'")}
    rows = [f"probe interval {interval:g} s, down after {core.settings.health_down_after} s,"
            f" grace {core.settings.health_start_grace} s (start) /"
            f" {core.settings.health_map_grace} s (map)"]
    took = None if decided_down is None else decided_down - hung_at
    met = "yes" if took is not None and took <= 90 else "NO"
    rows.append(f"hung: hang -> down decided and restart job {restart_job} queued:"
                f" {'never' if took is None else f'{took:.1f} s'} (goal <= 90 s: {met});"
                f" decisions {seen['hung']}")
    for name in ("slow-console", "slow-ingame"):
        down = health.DOWN in seen[name] or ids[name] in queued
        rows.append(f"{name}: decisions {seen[name]}; down or restarted:"
                    f" {'YES (goal: never)' if down else 'no (goal met)'}")
    return rows


def _hang(port: int) -> None:
    with contextlib.suppress(TimeoutError, OSError):  # the command that hangs it: no reply
        rcon(port, "sim_hang", timeout=1)


# --- scale ---------------------------------------------------------------------------------------


def section_scale(hosts: int = 20, per_host: int = 10, rounds: int = 5) -> list[str]:
    names = [f"h{h:02d}" for h in range(hosts)]
    probes = [health.Probe(1000.0, True, "run", s % 7 != 0, "c1m1_hotel")
              for s in range(hosts * per_host)]
    started = time.perf_counter()
    repeat = 200
    for _ in range(repeat):
        for probe in probes:
            health.assess(health.Watch("run", 0.0, 900.0, "c1m1_hotel", 950.0), probe,
                          health.Policy())
    pure = (time.perf_counter() - started) / repeat
    with tempfile.TemporaryDirectory() as scratch:
        core = scratch_core(Path(scratch), names)
        actor = owner(core)
        blueprint = blueprints.create(core, actor, "bench", ["bench-config"],
                                      blueprints.BlueprintSettings())
        for host in names:
            for index in range(per_host):
                deploy(core, actor, host, f"s{index}", blueprint.id)
        reads = {host: [{"name": f"s{index}", "running": True, "invocation": "run",
                         "a2s": {"map": "c1m1_hotel"} if index % 7 else None}
                        for index in range(per_host)] for host in names}
        timings = []
        for _ in range(rounds):
            started = time.perf_counter()
            for host in names:
                health.record(core, host, reads[host])
            timings.append(time.perf_counter() - started)
    return [f"{hosts * per_host} servers on {hosts} hosts, one round of decisions:",
            f"  assess alone (pure): {pure * 1000:.2f} ms",
            f"  health.record, database included: median {sorted(timings)[rounds // 2]:.3f} s"
            f" (rounds: {', '.join(f'{t:.3f}' for t in timings)});"
            " goal: well inside one probe interval (15 s)"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--section", choices=("hang", "scale", "all"), default="all")
    parser.add_argument("--interval", type=float, default=15.0)
    options = parser.parse_args()
    print(f"# benchmarks/health.py, {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC,"
          f" {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    if options.section in ("scale", "all"):
        print("\n".join(section_scale()))
    if options.section in ("hang", "all"):
        print("\n".join(section_hang(options.interval)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
