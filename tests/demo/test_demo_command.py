"""The README's first command: scripts/demo works twice in a row and tears down clean.

The test runs a demo of its own (LEFT4ME_DEMO_HOST, LEFT4ME_UI_PORT: its own host name,
address slot, inventory, port and state), so a person's demo, started by the README's first
command before its second, is still running, unchanged, when the test ends.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import urllib.request
from pathlib import Path

from testhosts import host

PROJECT = Path(__file__).resolve().parents[2]
PERSONS_UI = 8501  # the README's demo: host demo, slot 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_demo(name: str, port: int, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LEFT4ME_DEMO_HOST": name, "LEFT4ME_UI_PORT": str(port)}
    return subprocess.run([str(PROJECT / "scripts/demo"), *args], capture_output=True,
                          text=True, timeout=900, check=False, env=env)


def ui_answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health",
                                    timeout=5) as response:
            return response.read() == b"ok"
    except OSError:
        return False


def steam_lookups(webapi: str) -> int | None:
    """GetPlayerSummaries calls the demo's stand-in Web API answered; None when it is down."""
    try:
        with urllib.request.urlopen(f"{webapi}/_standin/stats", timeout=5) as response:
            return json.load(response)["requests"].get("GetPlayerSummaries", 0)
    except OSError:
        return None


def persons_demo() -> tuple[bool, bool]:
    """Whether the README's demo host exists and its UI answers (left as it was found)."""
    return "demo" in host.names(), ui_answers(PERSONS_UI)


def test_demo_runs_twice_then_tears_down_without_leftovers():
    name, port = host.unique_name("demo"), free_port()
    before = persons_demo()
    webapi = None
    try:
        for attempt in (1, 2):
            demo = run_demo(name, port)
            output = demo.stdout[-3000:] + demo.stderr[-3000:]
            assert demo.returncode == 0, f"run {attempt}:\n{output}"
            assert f"http://127.0.0.1:{port}/" in demo.stdout
            assert "failed=0" in demo.stdout
            # the UI is populated: the admin's and the player's password files are named
            admin_file = PROJECT / f".state/{name}-ui/bootstrap-admin-password"
            assert f"password in {admin_file}" in demo.stdout
            assert admin_file.stat().st_mode & 0o777 == 0o600
            assert "who runs the server player1" in demo.stdout
            assert ui_answers(port), f"run {attempt}: the UI does not answer"
            # the players' Steam names and avatars were looked up (the demo stops otherwise),
            # from the stand-in on this machine's end of the host's veth
            webapi = f"http://{host.load(name).gateway}:8880"
            assert f"Steam:      the stand-in Web API at {webapi}" in demo.stdout
            assert steam_lookups(webapi), f"run {attempt}: no Steam profile lookup"
            assert name in host.names()
            assert f"tear down:  LEFT4ME_DEMO_HOST={name} scripts/demo down" in demo.stdout
        uis = subprocess.run(["pgrep", "-f", f"streamlit run ui/asgi.py .*--server.port {port} "],
                             capture_output=True).stdout
        assert uis.count(b"\n") == 1, "one UI, not two"
    finally:
        down = run_demo(name, port, "down")
        shutil.rmtree(PROJECT / f".state/{name}-ui", ignore_errors=True)  # the test's own
    assert down.returncode == 0, down.stderr
    assert host.leftovers(name) == []
    assert not (PROJECT / f".state/{name}-inventory").exists()
    assert not ui_answers(port)
    if webapi:
        assert steam_lookups(webapi) is None  # the stand-in Web API went with the UI
    assert persons_demo() == before, "the README's demo was not left as it was"
