"""Print how long one server start takes through the UI's job engine and by hand, side by side.

    sudo .venv/bin/python benchmarks/ui_jobs.py [--rounds 2]

Boots one test host, converges it with site.yml (the demo world's settings), then starts new
servers on it, alternating: by hand, `ansible-playbook playbooks/server.yml --limit HOST -e
@server.json -e @rcon.json` (what an operator types), and through the UI: a blueprint, then
servers.create (ports, RCON password, the job row), the job engine's worker thread takes the
job and runs the same playbook with ansible-runner; timed from the click (servers.create)
until the job row says succeeded. Both wait for the server to answer A2S (the module does).
Goal: UI <= 1.15 x CLI (the median of each). A figure, not a timed test.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(PROJECT), str(PROJECT / "ui")]

from fleet import ansible_env, say, write_inventory  # noqa: E402

from left4me_ui import (  # noqa: E402
    accounts,
    blueprints,
    boot,  # noqa: E402
    jobs,
    servers,
    settings,
)
from left4me_ui.core import Core  # noqa: E402
from testhosts import host  # noqa: E402

GOAL = 1.15
HOSTNAME = "left4me benchmark"
# The CLI's servers take ports the UI's range (27015-27999 by default) leaves alone.
CLI_FIRST_PORT = 28100


def _write_private(path: Path, values: dict) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(values, handle)
    return path


def cli_start(inventory: Path, target: host.TestHost, scratch: Path, number: int) -> float:
    port = CLI_FIRST_PORT + 2 * number
    server = _write_private(scratch / f"cli{number}.json", {"left4me_server": {
        "name": f"cli{number}", "port": port, "client_port": port + 1, "overlays": [],
        "hostname": HOSTNAME, "state": "started"}})
    rcon = _write_private(scratch / f"cli{number}-rcon.json",
                          {"left4me_server_rcon_password": f"bench-rcon-{number}"})
    started = time.monotonic()
    subprocess.run(["ansible-playbook", "-i", str(inventory), "playbooks/server.yml",
                    "--limit", target.name, "-e", f"@{server}", "-e", f"@{rcon}"],
                   cwd=PROJECT, env=ansible_env(), check=True, capture_output=True)
    return time.monotonic() - started


def ui_start(core: Core, actor, target: host.TestHost, blueprint_id: int, number: int) -> float:
    started = time.monotonic()
    _server_id, job_id = servers.create(core, actor, f"ui{number}", target.name, blueprint_id)
    while True:
        job = jobs.get(core, actor, job_id)
        if job.finished:
            break
        time.sleep(0.05)
    seconds = time.monotonic() - started
    if job.state != jobs.SUCCEEDED:
        raise RuntimeError(f"the UI's job {job_id} {job.state}: {job.error}")
    return seconds


@contextlib.contextmanager
def converged_core(label: str, prefix: str) -> Iterator[tuple[Core, host.TestHost, Path, Path]]:
    """A booted test host converged by site.yml (the demo world's settings) and a UI Core on
    a scratch state dir whose inventory is that host: (core, host, inventory, scratch).
    The host is destroyed afterwards."""
    name = host.unique_name(prefix)
    target = host.create(name)
    try:
        with tempfile.TemporaryDirectory(prefix="left4me-bench-") as scratch_dir:
            scratch = Path(scratch_dir)
            (scratch / "inventory").mkdir()
            inventory = write_inventory(scratch / "inventory", target)
            say(f"{label}: converging site.yml on the booted host (the demo world's settings)")
            subprocess.run(["ansible-playbook", "-i", str(inventory), "playbooks/site.yml"],
                           cwd=PROJECT, env=ansible_env(), check=True, capture_output=True)
            # The UI process's environment, as the served UI has it: its venv's ansible first.
            os.environ["PATH"] = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
            settings.write_new_secret(scratch / "secret")
            core = boot.open_core(settings.Settings(state_dir=scratch / "state",
                                                    secret_file=scratch / "secret",
                                                    inventory=inventory))
            yield core, target, inventory, scratch
    finally:
        host.destroy(name)


def measure(rounds: int) -> str:
    """One line: median UI and CLI server start and their ratio, with the goal."""
    with converged_core("ui_jobs", "ub") as (core, target, inventory, scratch):
        with core.db.connect() as conn:
            accounts._insert_user(conn, core.clock(), "bench",
                                  accounts.hash_password("benchmark password"), "admin")
        actor = accounts.login(core, "bench", "benchmark password", client="bench").actor
        accounts.set_max_servers(core, actor, actor.user_id, rounds)
        recipe = blueprints.create(core, actor, "bench", [],
                                   blueprints.BlueprintSettings(hostname=HOSTNAME))
        core.worker = jobs.Worker(core)
        core.worker.start()
        cli, ui = [], []
        try:
            for number in range(rounds):
                # Alternate who goes first: a warm SSH connection or page cache helps
                # whoever runs second.
                order = (("cli", "ui") if number % 2 == 0 else ("ui", "cli"))
                for who in order:
                    say(f"ui_jobs: round {number + 1}/{rounds}, {who}")
                    if who == "cli":
                        cli.append(cli_start(inventory, target, scratch, number))
                    else:
                        ui.append(ui_start(core, actor, target, recipe.id, number))
        finally:
            core.worker.stop()
    ui_median, cli_median = statistics.median(ui), statistics.median(cli)
    ratio = ui_median / cli_median
    runs = ", ".join(f"{u:.1f}/{c:.1f}" for u, c in zip(ui, cli, strict=True))
    return (f"Server start, UI job engine / ansible-playbook (median of {rounds}): "
            f"{ratio:.2f} ({ui_median:.1f} s / {cli_median:.1f} s; rounds UI/CLI: {runs});"
            f" goal <= {GOAL}: {'met' if ratio <= GOAL else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    options = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("this boots a test host: run it as root")
    print(measure(options.rounds))


if __name__ == "__main__":
    main()
