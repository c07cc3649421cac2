"""The stand-in Steam Web API (standins/webapi) served in the test's process on loopback, and a
key file for it: what the UI's profile lookups talk to in tests (the real server, no mock);
or as a process of its own (`process`), where a test host's modules download from it."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from standins.webapi.catalogue import Catalogue
from standins.webapi.server import StandinServer

KEY = "0123456789ABCDEF0123456789ABCDEF"  # shaped like a key Valve issues
PROJECT = Path(__file__).resolve().parents[2]


@contextmanager
def serving(player_names: dict[str, str]) -> Iterator[StandinServer]:
    catalogue = Catalogue()
    catalogue.player_names.update(player_names)
    server = StandinServer(("127.0.0.1", 0), catalogue, None)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def write_key(path: Path, key: str = KEY) -> Path:
    path.touch(mode=0o600)
    path.write_text(key + "\n")
    return path


def summaries_calls(server: StandinServer) -> int:
    return server.stats.snapshot()["requests"].get("GetPlayerSummaries", 0)


@contextmanager
def process(*options: str) -> Iterator[str]:
    """`python -m standins.webapi OPTIONS` (e.g. --bind ADDRESS --port 0 --generate 4); yields
    its base URL once it listens, and stops it on the way out."""
    served = subprocess.Popen(
        [sys.executable, "-m", "standins.webapi", *options], cwd=PROJECT,
        stdout=subprocess.PIPE, text=True,
        env={"PYTHONPATH": str(PROJECT), "PATH": "/usr/bin:/bin"})
    try:
        line = served.stdout.readline()
        assert "listening on " in line, line
        yield line.rsplit(" ", 1)[1].strip()
    finally:
        served.terminate()
        served.wait(timeout=10)
