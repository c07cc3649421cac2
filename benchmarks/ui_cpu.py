"""Print the UI's own CPU while 10 people have a server page open: fast path and runner path.

    sudo .venv/bin/python benchmarks/ui_cpu.py [--pages 10] [--seconds 60]

Boots one test host, converges it with site.yml (the demo world's settings), starts one
server on it through the UI's job engine, then serves the UI (`streamlit run ui/asgi.py`)
twice on that state, once per read path, and each time opens `--pages` browser sessions
(Debian's chromium through Playwright, each its own login) on that server's page, whose
status panel re-reads the server every 5 s. Over `--seconds` it counts the CPU time of the
UI's process tree: the streamlit process and every process under it, running or ended
(ssh, ansible-runner, ansible and its forks: /proc/PID/stat's utime, stime, cutime, cstime),
and the SSH control masters of its state dir (they leave the tree when they detach):
- fast: the default, each read one request to the host's left4me-read over the kept SSH
  connection (issue 19);
- runner: LEFT4ME_UI_FAST_READS=off, each read an ansible-runner run of srcds_info, as
  before issue 19.
Prints CPU seconds per minute for each and their ratio. A figure, not a timed test.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

PROJECT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(PROJECT), str(PROJECT / "ui")]

from console_rtt import _started_server  # noqa: E402
from fleet import say  # noqa: E402
from ui_jobs import converged_core  # noqa: E402

PASSWORD = "benchmark password"  # the bench admin _started_server makes
TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds of the process and its reaped children), None once gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return int(fields[1]), (utime + stime + cutime + cstime) / TICKS


def tree_cpu(root: int, marker: str) -> float:
    """CPU seconds of `root`, every live process under it (whose own ended children are in
    their cutime/cstime until they end too) and the SSH masters whose command line names
    `marker` (the state dir: their control sockets live there)."""
    found: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            found[int(entry)] = stat
    children: dict[int, list[int]] = {}
    for pid, (parent, _cpu) in found.items():
        children.setdefault(parent, []).append(pid)
    counted, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in found and pid not in counted:
            counted.add(pid)
            todo.extend(children.get(pid, []))
    for pid in found:
        if pid in counted:
            continue
        try:
            line = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if line.startswith("ssh") and marker in line:
            counted.add(pid)
    return sum(found[pid][1] for pid in counted)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve(scratch: Path, inventory: Path, fast: bool, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "ui/asgi.py", "--server.address",
         "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
         "--browser.gatherUsageStats", "false"], cwd=PROJECT,
        stdout=log.open("w"), stderr=subprocess.STDOUT,
        env={**os.environ, "LEFT4ME_UI_STATE_DIR": str(scratch / "state"),
             "LEFT4ME_UI_SECRET_FILE": str(scratch / "secret"),
             "LEFT4ME_INVENTORY": str(inventory),
             "LEFT4ME_UI_FAST_READS": "on" if fast else "off",
             "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                return server, url
        except OSError:
            time.sleep(0.3)
    server.terminate()
    raise RuntimeError(f"the UI did not start: {log.read_text()[-2000:]}")


def open_server_page(page, address: str, tries: int = 5) -> None:
    """Open the server's page until its status panel shows: on a busy machine a run can
    end in the page's neutral error (a database lock waited out), as a person would reload."""
    for _ in range(tries):
        page.goto(address)
        try:
            page.get_by_text("Status:").first.wait_for(timeout=90_000)
            return
        except PlaywrightTimeout:
            continue
    raise RuntimeError(f"{address} showed no status after {tries} tries")


def watch(scratch: Path, inventory: Path, server_id: int, fast: bool, pages: int,
          seconds: float) -> tuple[float, float]:
    """CPU seconds per minute of the UI's tree with `pages` server pages open, and the load
    average over the window."""
    label = "fast" if fast else "runner"
    server, url = serve(scratch, inventory, fast, scratch / f"ui-{label}.log")
    try:
        with sync_playwright() as driver:
            # as root Chromium cannot use its own sandbox (see tests/ui/test_browser.py)
            browser = driver.chromium.launch(executable_path="/usr/bin/chromium",
                                             chromium_sandbox=False)
            for number in range(pages):
                page = browser.new_context().new_page()
                page.set_default_timeout(300_000)  # generous: the machine may be busy
                page.goto(url + "/")
                page.wait_for_url(url + "/login")
                page.fill("#name", "bench")
                page.fill("#password", PASSWORD)
                page.click("button[type=submit]")
                page.wait_for_url(url + "/")
                open_server_page(page, f"{url}/?server={server_id}")
                say(f"ui_cpu: {label}: page {number + 1} of {pages} on the server's page")
            time.sleep(10)  # every page's status panel past its first reads
            marker = str(scratch / "state")
            before, started = tree_cpu(server.pid, marker), time.monotonic()
            time.sleep(seconds)
            used, took = tree_cpu(server.pid, marker) - before, time.monotonic() - started
            load = os.getloadavg()[0]
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=60)
    return used / took * 60, load


def measure(pages: int, seconds: float) -> str:
    with converged_core("ui_cpu", "uc") as (core, target, inventory, scratch):
        say("ui_cpu: starting one server through the UI's job engine")
        _actor, server_id = _started_server(core, target)
        fast, fast_load = watch(scratch, inventory, server_id, True, pages, seconds)
        runner, runner_load = watch(scratch, inventory, server_id, False, pages, seconds)
    return (f"UI CPU with {pages} server pages open ({seconds:.0f} s each, the status panel"
            f" re-reading every 5 s): fast path {fast:.1f} CPU s/min (load {fast_load:.1f}),"
            f" runner path (LEFT4ME_UI_FAST_READS=off) {runner:.1f} CPU s/min (load"
            f" {runner_load:.1f}); fast / runner {fast / runner:.3f}"
            f" ({runner / fast:.1f}x less CPU)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=60)
    options = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("this boots a test host: run it as root")
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"left4me UI CPU benchmark, {os.cpu_count()} cores,"
          f" {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {load}", flush=True)
    print(measure(options.pages, options.seconds), flush=True)


if __name__ == "__main__":
    main()
