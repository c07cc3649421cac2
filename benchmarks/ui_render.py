"""Print how long the server side takes to draw the Servers page for an admin with 50 servers.

    .venv/bin/python benchmarks/ui_render.py [--servers 50] [--runs 10]

AppTest runs ui/app.py and the page exactly as the server would (no browser), on a fresh
state dir with a fixed inventory, so the figure is the page's own cost: domain reads,
table, detail and job panel. A figure, not a timed test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(PROJECT), str(PROJECT / "ui")]

import frame  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from left4me_ui import (  # noqa: E402
    accounts,
    blueprints,
    boot,  # noqa: E402
    servers,
    settings,
)
from left4me_ui.inventory import Inventory  # noqa: E402

PASSWORD = "benchmark password"


def measure(server_count: int = 50, runs: int = 10) -> str:
    """One line: the Servers page's server-side render time with server_count servers."""
    with tempfile.TemporaryDirectory(prefix="left4me-bench-") as scratch:
        root = Path(scratch)
        settings.write_new_secret(root / "secret")
        config = settings.Settings(state_dir=root / "state", secret_file=root / "secret",
                                   inventory=root / "inventory.yml",
                                   port_range=(27015, 27015 + 4 * server_count))
        inventory = Inventory({"alpha": {"ansible_host": "192.0.2.10"}})
        core = boot.open_core(config, inventory_loader=lambda _path: inventory)
        frame._core = core
        with core.db.connect() as conn:
            accounts._insert_user(conn, core.clock(), "bench", accounts.hash_password(PASSWORD),
                                  "admin")
        login = accounts.login(core, "bench", PASSWORD, client="bench")
        accounts.set_max_servers(core, login.actor, login.actor.user_id, server_count)
        recipe = blueprints.create(core, login.actor, "bench", [],
                                   blueprints.BlueprintSettings())
        for number in range(server_count):
            servers.create(core, login.actor, f"bench{number}", "alpha", recipe.id)
        timings = []
        for _ in range(runs + 1):
            app = AppTest.from_file(str(PROJECT / "ui/app.py"), default_timeout=60)
            app.session_state[frame.TEST_TOKEN_KEY] = login.token
            started = time.perf_counter()
            app.run()
            timings.append(time.perf_counter() - started)
            assert not app.exception and len(app.dataframe[0].value) == server_count
        timings = timings[1:]  # the first run also imports and compiles the pages
        # AppTest itself costs time on every run (it rescans installed components): an
        # empty script under the same harness is the floor to subtract.
        floor = []
        for _ in range(runs):
            empty = AppTest.from_string("import streamlit as st\nst.title('empty')")
            started = time.perf_counter()
            empty.run()
            floor.append(time.perf_counter() - started)
        page, harness = statistics.median(timings), statistics.median(floor)
    return (f"Servers page with {server_count} servers, server-side, median of {runs} runs:"
            f" {page * 1000:.0f} ms under AppTest, of which {harness * 1000:.0f} ms is"
            f" AppTest's own floor (an empty script): page ~{(page - harness) * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--servers", type=int, default=50)
    parser.add_argument("--runs", type=int, default=10)
    options = parser.parse_args()
    print(measure(options.servers, options.runs))


if __name__ == "__main__":
    main()
