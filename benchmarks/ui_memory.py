"""Print the UI server's memory with N open, logged-in browser sessions (default 20).

    .venv/bin/python benchmarks/ui_memory.py [--sessions 20]

Serves the UI (`streamlit run ui/asgi.py`, fresh state dir, the demo inventory: no host
is contacted), opens N Chromium contexts (Debian's chromium through Playwright), each
logged in on the Servers page, and reads the server process's resident memory from
/proc before and after. A figure, not a timed test.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

PROJECT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(PROJECT / "ui")]

from left4me_ui import settings  # noqa: E402

PASSWORD = "benchmark admin password"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def measure(sessions: int = 20) -> str:
    """One line: the UI server's RSS idle and with `sessions` logged-in browser sessions."""
    with tempfile.TemporaryDirectory(prefix="left4me-bench-") as scratch:
        root = Path(scratch)
        settings.write_new_secret(root / "secret")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "ui/asgi.py", "--server.address",
             "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
             "--browser.gatherUsageStats", "false"], cwd=PROJECT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "LEFT4ME_UI_STATE_DIR": str(root / "state"),
                 "LEFT4ME_UI_SECRET_FILE": str(root / "secret"),
                 "LEFT4ME_UI_BOOTSTRAP_PASSWORD": PASSWORD})
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(200):
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                        break
                except OSError:
                    time.sleep(0.3)
            idle = rss_mib(server.pid)
            with sync_playwright() as driver:
                # as root Chromium cannot use its own sandbox (see tests/ui/test_browser.py)
                browser = driver.chromium.launch(executable_path="/usr/bin/chromium",
                                                 chromium_sandbox=False)
                pages = []
                for number in range(sessions):
                    page = browser.new_context().new_page()
                    # generous: the machine may be busy with other work
                    page.set_default_timeout(300_000)
                    page.goto(url + "/")
                    page.wait_for_url(url + "/login")
                    page.fill("#name", "admin")
                    page.fill("#password", PASSWORD)
                    page.click("button[type=submit]")
                    page.wait_for_url(url + "/")
                    page.get_by_role("heading", name="Servers").wait_for()
                    pages.append(page)
                    print(f"  .. ui_memory: session {number + 1} of {sessions} on Servers",
                          file=sys.stderr, flush=True)
                time.sleep(2)
                busy = rss_mib(server.pid)
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    return (f"UI server memory (RSS): {idle:.0f} MiB idle after start, {busy:.0f} MiB with"
            f" {sessions} logged-in sessions on the Servers page"
            f" ({(busy - idle) / sessions:.1f} MiB per session)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=20)
    options = parser.parse_args()
    print(measure(options.sessions))


if __name__ == "__main__":
    main()
