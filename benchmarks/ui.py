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
    lines = []
    if options.section in ("render", "all"):
        lines.append(ui_render.measure())
    if options.section in ("memory", "all"):
        lines.append(ui_memory.measure())
    if options.section in ("jobs", "all"):
        lines.append(ui_jobs.measure(options.rounds))
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"left4me UI benchmarks, {os.cpu_count()} cores, {today}, load average {load}")
    for line in lines:
        print(f"- {line}")


if __name__ == "__main__":
    main()
