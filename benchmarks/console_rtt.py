"""Print the console's round trip for `status` on the demo host, beside RCON's own floor.

    scripts/demo                                  # once: the demo host and its UI state
    .venv/bin/python benchmarks/console_rtt.py [--runs 15]

The UI's console (left4me_ui.live.run_console: an ansible-runner run of the collection's
rcon module on the host, RCON to 127.0.0.1 there) against a direct RCON exchange from this
machine to the same server (the rcon library, what a client on the same network would
cost; the UI never does this: it would send the password over the network). Medians of
interleaved runs, so load changes hit both alike. Goal: UI median <= 1 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(PROJECT), str(PROJECT / "ui")]
os.environ.setdefault("LEFT4ME_UI_STATE_DIR", str(PROJECT / ".state/demo-ui"))
os.environ.setdefault("LEFT4ME_INVENTORY", str(PROJECT / "inventories/demo"))

from rcon.source import Client  # noqa: E402

from left4me_ui import accounts, live, servers  # noqa: E402
from left4me_ui.core import boot  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    options = parser.parse_args()
    ui = boot(start_worker=False)
    password = (ui.settings.state_dir / "demo-player-password").read_text().strip()
    actor = accounts.login(ui, "player", password, client="benchmark").actor
    server = next(s for s in servers.list_for(ui, actor) if s.name == "player1")
    address, _, port = server.connect_line.removeprefix("connect ").rpartition(":")
    rcon_password = servers.rcon_password(ui, actor, server.id)
    through_ui, direct = [], []
    for _ in range(options.runs):
        started = time.perf_counter()
        answer = live.run_console(ui, actor, server.id, "status")
        through_ui.append(time.perf_counter() - started)
        assert "hostname:" in answer.output, answer.output
        started = time.perf_counter()
        with Client(address, int(port), passwd=rcon_password, timeout=10,
                    frag_threshold=1) as client:
            assert "hostname:" in client.run("status")
        direct.append(time.perf_counter() - started)
    ui_median, floor = statistics.median(through_ui), statistics.median(direct)
    print(f"left4me console round trip, {os.cpu_count()} cores, "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load {os.getloadavg()[0]:.1f}, "
          f"{options.runs} runs each")
    print(f"  UI console (ansible-runner + rcon module on the host): median {ui_median:.2f} s"
          f"  {'OK' if ui_median <= 1.0 else 'MISSES'} goal <= 1 s")
    print(f"  direct RCON over the network (floor, not what the UI does): median {floor:.3f} s")
    print(f"  ratio UI / direct: {ui_median / floor:.0f}x")


if __name__ == "__main__":
    main()
