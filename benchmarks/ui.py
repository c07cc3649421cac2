"""The web UI's figures in one run, printed with the core count, date and load.

    sudo .venv/bin/python benchmarks/ui.py [--section jobs|render|memory|all]

  jobs    a server start through the UI's job engine and by `ansible-playbook`, side by
          side on one booted, converged test host (ui_jobs.py; goal UI <= 1.15 x CLI)
  render  the Servers page drawn server-side for an admin with 50 servers (ui_render.py)
  memory  the served UI's resident memory with 20 logged-in Chromium sessions (ui_memory.py)

Each script also runs alone. Figures, not timed tests (README "Benchmarks" has the last run).
"""

from __future__ import annotations

import argparse
import datetime
import os

import ui_jobs
import ui_memory
import ui_render


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--section", choices=("jobs", "render", "memory", "all"),
                        default="all")
    parser.add_argument("--rounds", type=int, default=3, help="server starts of each kind")
    options = parser.parse_args()
    if options.section in ("jobs", "all") and os.geteuid() != 0:
        parser.error("the jobs section boots a test host: run it as root")
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"left4me UI benchmarks, {os.cpu_count()} cores, {today}, load average {load}",
          flush=True)
    # Each figure as soon as it is measured: a later one failing loses none of them.
    if options.section in ("render", "all"):
        print(f"- {ui_render.measure()}", flush=True)
    if options.section in ("memory", "all"):
        print(f"- {ui_memory.measure()}", flush=True)
    if options.section in ("jobs", "all"):
        print(f"- {ui_jobs.measure(options.rounds)}", flush=True)
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"(load average at the end: {load})")


if __name__ == "__main__":
    main()
