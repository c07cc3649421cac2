"""The README's first command: scripts/demo works twice in a row and tears down clean.

It replaces a demo that is already running on this machine (same host name, same port).
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path

from testhosts import host

PROJECT = Path(__file__).resolve().parents[2]
UI_HEALTH = "http://127.0.0.1:8501/_stcore/health"
WEBAPI_STATS = "http://169.254.77.1:8880/_standin/stats"


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PROJECT / "scripts/demo"), *args], capture_output=True,
                          text=True, timeout=900, check=False)


def ui_answers() -> bool:
    try:
        with urllib.request.urlopen(UI_HEALTH, timeout=5) as response:
            return response.read() == b"ok"
    except OSError:
        return False


def steam_lookups() -> int | None:
    """GetPlayerSummaries calls the demo's stand-in Web API answered; None when it is down."""
    try:
        with urllib.request.urlopen(WEBAPI_STATS, timeout=5) as response:
            return json.load(response)["requests"].get("GetPlayerSummaries", 0)
    except OSError:
        return None


def test_demo_runs_twice_then_tears_down_without_leftovers():
    try:
        for attempt in (1, 2):
            demo = run_demo()
            output = demo.stdout[-3000:] + demo.stderr[-3000:]
            assert demo.returncode == 0, f"run {attempt}:\n{output}"
            assert "http://127.0.0.1:8501/" in demo.stdout
            assert "failed=0" in demo.stdout
            # the UI is populated: the admin's and the player's password files are named
            admin_file = PROJECT / ".state/demo-ui/bootstrap-admin-password"
            assert f"password in {admin_file}" in demo.stdout
            assert admin_file.stat().st_mode & 0o777 == 0o600
            assert "who runs the server player1" in demo.stdout
            assert ui_answers(), f"run {attempt}: the UI does not answer"
            # the players' Steam names and avatars were looked up (the demo stops otherwise)
            assert "Steam:      the stand-in Web API at http://169.254.77.1:8880" in demo.stdout
            assert steam_lookups(), f"run {attempt}: no Steam profile lookup"
            assert "demo" in host.names()
        assert subprocess.run(["pgrep", "-f", "streamlit run ui/asgi.py"],
                              capture_output=True).stdout.count(b"\n") == 1, "one UI, not two"
    finally:
        down = run_demo("down")
    assert down.returncode == 0, down.stderr
    assert host.leftovers("demo") == []
    assert not ui_answers()
    assert steam_lookups() is None  # the stand-in Web API went with the UI
