"""Print the console's round trip for `status`, beside Ansible's floor and RCON's own.

    sudo .venv/bin/python benchmarks/console_rtt.py [--runs 15]

Boots one test host, converges it with site.yml (the demo world's settings), starts one
server on it through the UI's job engine, then times, interleaved so load changes hit all
alike:
- the UI's console: left4me_ui.live.run_console, an ansible-runner run of the collection's
  rcon module on the host (RCON to 127.0.0.1 there), exactly what the Console page does;
- of that, the RCON exchange on the host (the module's own `seconds`);
- Ansible's floor: the same runner path running `ansible.builtin.ping` (fork, SSH over the
  UI's kept connection, become, module transfer, Python start on the host; no RCON);
- a direct RCON exchange from this machine (the rcon library; what a client on the same
  network costs; the UI never does this: it would send the password over the network).
Medians and p90 of `--runs` rounds. Goal: UI median <= 1 s. A figure, not a timed test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(PROJECT), str(PROJECT / "ui")]

from fleet import ansible_env, say, write_inventory  # noqa: E402
from rcon.source import Client  # noqa: E402

from left4me_ui import (  # noqa: E402
    accounts,
    blueprints,
    boot,  # noqa: E402
    jobs,
    live,
    servers,
    settings,
)
from left4me_ui.core import Core  # noqa: E402
from left4me_ui.runner import run_module  # noqa: E402
from testhosts import host  # noqa: E402

GOAL_SECONDS = 1.0


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


def _started_server(core: Core, target: host.TestHost) -> tuple[object, int]:
    """A bench admin and one UI server on the host, its create job run here."""
    with core.db.connect() as conn:
        accounts._insert_user(conn, core.clock(), "bench",
                              accounts.hash_password("benchmark password"), "admin")
    actor = accounts.login(core, "bench", "benchmark password", client="bench").actor
    recipe = blueprints.create(core, actor, "bench", [],
                               blueprints.BlueprintSettings(hostname="left4me console bench"))
    server_id, _job_id = servers.create(core, actor, "console1", target.name, recipe.id)
    while (job := jobs.run_next(core)) is not None:
        if job.state != jobs.SUCCEEDED:
            raise RuntimeError(f"the server's job {job.id} {job.state}: {job.error}")
    return actor, server_id


def rounds(core: Core, actor, server_id: int, host_name: str, runs: int) -> dict[str, list]:
    server = servers.get(core, actor, server_id)
    address, _, port = server.connect_line.removeprefix("connect ").rpartition(":")
    rcon_password = servers.rcon_password(core, actor, server_id)
    timings: dict[str, list[float]] = {"ui": [], "on_host": [], "ping": [], "direct": []}
    live.run_console(core, actor, server_id, "status")  # warm: SSH's kept connection opens
    for _ in range(runs):
        started = time.perf_counter()
        answer = live.run_console(core, actor, server_id, "status")
        timings["ui"].append(time.perf_counter() - started)
        assert "hostname:" in answer.output, answer.output
        timings["on_host"].append(answer.seconds)
        started = time.perf_counter()
        pinged = run_module(core, host_name, "ansible.builtin.ping", {"data": "pong"},
                            timeout=60)
        timings["ping"].append(time.perf_counter() - started)
        assert pinged.ok, pinged.message
        started = time.perf_counter()
        with Client(address, int(port), passwd=rcon_password, timeout=10,
                    frag_threshold=1) as client:
            assert "hostname:" in client.run("status")
        timings["direct"].append(time.perf_counter() - started)
    return timings


def measure(runs: int) -> str:
    name = host.unique_name("cr")
    target = host.create(name)
    try:
        with tempfile.TemporaryDirectory(prefix="left4me-bench-") as scratch_dir:
            scratch = Path(scratch_dir)
            (scratch / "inventory").mkdir()
            inventory = write_inventory(scratch / "inventory", target)
            say("console_rtt: converging site.yml on the booted host (the demo world's settings)")
            subprocess.run(["ansible-playbook", "-i", str(inventory), "playbooks/site.yml"],
                           cwd=PROJECT, env=ansible_env(), check=True, capture_output=True)
            # The UI process's environment, as the served UI has it: its venv's ansible first.
            os.environ["PATH"] = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
            settings.write_new_secret(scratch / "secret")
            core = boot.open_core(settings.Settings(state_dir=scratch / "state",
                                                    secret_file=scratch / "secret",
                                                    inventory=inventory))
            say("console_rtt: starting one server through the UI's job engine")
            actor, server_id = _started_server(core, target)
            say(f"console_rtt: {runs} rounds of status (UI console, ansible ping, direct RCON)")
            timings = rounds(core, actor, server_id, target.name, runs)
    finally:
        host.destroy(name)
    ui, on_host = statistics.median(timings["ui"]), statistics.median(timings["on_host"])
    ping, direct = statistics.median(timings["ping"]), statistics.median(timings["direct"])
    return (f"Console round trip of `status` (n={runs}): UI median {ui:.2f} s, p90"
            f" {p90(timings['ui']):.2f} s; goal <= {GOAL_SECONDS:.0f} s:"
            f" {'met' if ui <= GOAL_SECONDS else 'NOT met'}. Of it, RCON on the host"
            f" {on_host * 1000:.0f} ms; an ad-hoc ansible.builtin.ping by the same path"
            f" {ping:.2f} s (p90 {p90(timings['ping']):.2f} s); direct RCON over the network"
            f" {direct * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    options = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("this boots a test host: run it as root")
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"left4me console benchmark, {os.cpu_count()} cores,"
          f" {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {load}", flush=True)
    print(measure(options.runs), flush=True)
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"(load average at the end: {load})")


if __name__ == "__main__":
    main()
