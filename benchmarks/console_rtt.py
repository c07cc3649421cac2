"""Print the console's round trip for `status` over the fast path and the Ansible path.

    sudo .venv/bin/python benchmarks/console_rtt.py [--runs 15]

Boots one test host, converges it with site.yml (the demo world's settings), starts one
server on it through the UI's job engine, then times, interleaved so load changes hit all
alike:
- the UI's console over the fast path: left4me_ui.live.run_console sending the request to
  the host's left4me-read over the UI's kept SSH connection (host_reads), what the Console
  page does by default;
- the same over the runner path (LEFT4ME_UI_FAST_READS=off, the awx backend): an
  ansible-runner run of the collection's rcon module;
- the fast path's split: SSH (`true` over the kept connection), the entry point's start
  (sudo, Python, its imports: a refused request, minus SSH) and RCON on the host (the
  answer's own `seconds`);
- a log read after a cursor over the fast path (the log panel's refresh before it followed,
  and still its refresh where the log is read by cursor);
- P9, the followed log: a line said in the console (`say`), from journald's time of it to
  its arrival in the follower's buffer (left4me_ui.log_follow: left4me-read's follow stream
  over the kept connection), which the log panel redraws from every 0.25 s;
- Ansible's floor: the runner path running `ansible.builtin.ping`.
(RCON answers only on the host itself now, so there is no direct exchange to time.)
Medians and p90 of `--runs` rounds. Goals (issue 19): fast median <= 0.3 s, p90 <= 0.5 s;
P9: a new journal line in the open log panel within 1 s.
A figure, not a timed test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(PROJECT), str(PROJECT / "ui")]

from fleet import say  # noqa: E402
from ui_jobs import converged_core  # noqa: E402

from left4me_ui import (  # noqa: E402
    accounts,
    blueprints,
    host_reads,
    jobs,
    live,
    log_follow,
    servers,
)
from left4me_ui.core import Core  # noqa: E402
from left4me_ui.runner import run_module, ssh_control_dir  # noqa: E402
from testhosts import host  # noqa: E402

GOAL_MEDIAN, GOAL_P90 = 0.3, 0.5
GOAL_FOLLOW = 1.0  # P9: journal line -> open log panel


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


def timed(call) -> tuple[float, object]:
    started = time.perf_counter()
    found = call()
    return time.perf_counter() - started, found


def ssh_split(core: Core, host_name: str) -> tuple[float, float]:
    """SSH alone (`true` over the kept connection) and SSH plus the entry point's start (a
    request it refuses before reading anything)."""
    target = host_reads.target_of(core, host_name)
    control = ssh_control_dir(core.settings.state_dir)
    ssh, _ = timed(lambda: subprocess.run(host_reads.ssh_argv(target, control, remote=("true",)),
                                          check=True, capture_output=True))
    entry, done = timed(lambda: subprocess.run(host_reads.ssh_argv(target, control),
                                               input=b'{"verb": "none"}', capture_output=True))
    assert done.returncode == 2, done  # refused by the entry point: it started
    return ssh, entry


def console(core: Core, actor, server_id: int, fast: bool) -> tuple[float, object]:
    core.settings = replace(core.settings, fast_reads=fast)
    took, answer = timed(lambda: live.run_console(core, actor, server_id, "status"))
    assert "hostname:" in answer.output and answer.fast == fast, answer
    return took, answer


def followed(core: Core, actor, server_id: int, host_name: str, marker: str,
             timeout: float = 10) -> float:
    """Say `marker`; seconds from journald's time of the line to its arrival in the
    follower's buffer (woken by the buffer itself, so no polling step is added)."""
    view = live.follow_log(core, actor, server_id)
    follower = log_follow.FOLLOWERS.get((host_reads.target_of(core, host_name),
                                         ssh_control_dir(core.settings.state_dir), "console1"))
    live.run_console(core, actor, server_id, f"say {marker}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = follower.buffer.wait(view.version, 0.5)
        arrived = time.time()
        follower.look()
        found = [line for line in view.lines if line.endswith(f"Console: {marker}")]
        if found:
            return arrived - log_follow.line_time(found[0])
    raise RuntimeError(f"{marker} never reached the follower's buffer")


def rounds(core: Core, actor, server_id: int, host_name: str, runs: int) -> dict[str, list]:
    timings: dict[str, list[float]] = {key: [] for key in (
        "fast", "runner", "on_host", "ssh", "entry", "log", "follow", "ping")}
    for fast in (True, False):  # warm: the kept connection opens
        console(core, actor, server_id, fast)
    core.settings = replace(core.settings, fast_reads=True)
    cursor = live.read_log(core, actor, server_id).cursor
    deadline = time.monotonic() + 30
    while not (view := live.follow_log(core, actor, server_id)).connected:  # the stream opens
        if time.monotonic() > deadline:
            raise RuntimeError(f"the log follower did not connect: {view.error}")
        time.sleep(0.05)
    for _ in range(runs):
        took, answer = console(core, actor, server_id, True)
        timings["fast"].append(took)
        timings["on_host"].append(answer.seconds)
        timings["runner"].append(console(core, actor, server_id, False)[0])
        core.settings = replace(core.settings, fast_reads=True)
        ssh, entry = ssh_split(core, host_name)
        timings["ssh"].append(ssh)
        timings["entry"].append(entry - ssh)
        took, page = timed(lambda at=cursor: live.read_log(core, actor, server_id, at))
        cursor = page.cursor
        timings["log"].append(took)
        timings["follow"].append(followed(core, actor, server_id, host_name,
                                          f"bench-{os.getpid()}-{len(timings['log'])}"))
        took, pinged = timed(lambda: run_module(core, host_name, "ansible.builtin.ping",
                                                {"data": "pong"}, timeout=60))
        timings["ping"].append(took)
        assert pinged.ok, pinged.message
    return timings


def report(timings: dict[str, list[float]], runs: int) -> str:
    median = {key: statistics.median(values) for key, values in timings.items()}
    fast, runner = median["fast"], median["runner"]
    met = fast <= GOAL_MEDIAN and p90(timings["fast"]) <= GOAL_P90
    return (f"Console round trip of `status` (n={runs}): fast path median {fast:.3f} s, p90"
            f" {p90(timings['fast']):.3f} s; runner path median {runner:.2f} s, p90"
            f" {p90(timings['runner']):.2f} s; runner / fast {runner / fast:.1f}x. Goal"
            f" median <= {GOAL_MEDIAN} s, p90 <= {GOAL_P90} s: {'met' if met else 'NOT met'}."
            f" Fast path split: SSH {median['ssh'] * 1000:.0f} ms, entry point start"
            f" {median['entry'] * 1000:.0f} ms, RCON on the host"
            f" {median['on_host'] * 1000:.0f} ms. Log read after a cursor (fast path)"
            f" {median['log'] * 1000:.0f} ms, p90 {p90(timings['log']) * 1000:.0f} ms; an"
            f" ad-hoc ansible.builtin.ping {median['ping']:.2f} s.\n" + follow_report(timings))


def follow_report(timings: dict[str, list[float]]) -> str:
    follow = timings["follow"]
    worst = max(follow) + log_follow.PANEL_SECONDS
    return (f"P9, followed log (n={len(follow)}): journal line -> follower's buffer median"
            f" {statistics.median(follow) * 1000:.0f} ms, max {max(follow) * 1000:.0f} ms;"
            f" in the open panel (redrawn every {log_follow.PANEL_SECONDS} s) at most"
            f" {worst:.2f} s. Goal <= {GOAL_FOLLOW} s:"
            f" {'met' if worst <= GOAL_FOLLOW else 'NOT met'}.")


def measure(runs: int) -> str:
    with converged_core("console_rtt", "cr") as (core, target, _inventory, _scratch):
        say("console_rtt: starting one server through the UI's job engine")
        actor, server_id = _started_server(core, target)
        say(f"console_rtt: {runs} rounds of status (fast path, runner path, ping, RCON)")
        timings = rounds(core, actor, server_id, target.name, runs)
    return report(timings, runs)


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
