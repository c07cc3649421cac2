"""Helpers and fixtures that run the stand-ins as real subprocesses on loopback.

Other suites reuse them: `from standin_harness import start_srcds, start_webapi` in a conftest.

Use `start_srcds(game_root, *args)` and `start_webapi(*args)`; both return handles whose
processes are stopped (SIGTERM, then SIGKILL) when the test ends.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import a2s
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # tests import standins (e.g. VPK_HEADER) directly
LOOPBACK = "127.0.0.1"
READY_TIMEOUT = 10.0


def free_port() -> int:
    """A port free for both UDP (A2S) and TCP (RCON) on loopback."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((LOOPBACK, 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((LOOPBACK, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port pair on loopback")


def standin_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SRCDS_SIM", "STEAMCMD_SIM"))
    }
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class StandinProcess:
    """A running stand-in with its stdout collected line by line in the background."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.popen = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()

    def _collect(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for_line(self, text: str, timeout: float = READY_TIMEOUT) -> str:
        """Block until a stdout line contains `text` (fails the test on timeout or exit)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if text in line:
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (
                    self.popen.poll() is not None and not self._reader.is_alive()
                ):
                    raise AssertionError(f"no line containing {text!r}; output:\n{self.output}")
                self._changed.wait(min(remaining, 0.2))

    def wait(self, timeout: float = READY_TIMEOUT) -> int:
        code = self.popen.wait(timeout)
        self._reader.join(timeout)
        return code

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                return self.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        return self.wait(timeout)


@dataclass
class Srcds:
    process: StandinProcess
    port: int
    game_root: Path

    @property
    def address(self) -> tuple[str, int]:
        return (LOOPBACK, self.port)


@dataclass
class WebApi:
    process: StandinProcess
    base_url: str


def make_game_root(root: Path, server_cfg: str | None = None) -> Path:
    """A minimal game root (the dir holding left4dead2/) as an overlay would present it."""
    for sub in ("cfg", "addons", "maps"):
        (root / "left4dead2" / sub).mkdir(parents=True, exist_ok=True)
    if server_cfg is not None:
        (root / "left4dead2" / "cfg" / "server.cfg").write_text(server_cfg)
    return root


def wait_until_answering(address: tuple[str, int], process: StandinProcess) -> None:
    """Poll A2S_INFO (what a monitor would do) instead of sleeping."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise AssertionError(f"srcds exited early:\n{process.output}")
        try:
            a2s.info(address, timeout=0.3)
            return
        except (TimeoutError, OSError):
            continue
    raise AssertionError(f"srcds never answered A2S:\n{process.output}")


@pytest.fixture
def start_srcds() -> Iterator[Callable[..., Srcds]]:
    """`start_srcds(game_root, *extra_args, env=None, port=None, ready=True)`."""
    started: list[StandinProcess] = []

    def start(
        game_root: Path,
        *args: str,
        env: dict[str, str] | None = None,
        port: int | None = None,
        ready: bool = True,
    ) -> Srcds:
        port = port or free_port()
        argv = [sys.executable, "-m", "standins.srcds", "-game", "left4dead2", "-port", str(port)]
        if not any(arg == "+map" for arg in args):
            argv += ["+map", "c1m1_hotel"]
        # As left4me starts it: a client port of its own, no SourceTV socket (many stand-ins
        # share loopback here; srcds's defaults 27005 and 27020 would collide).
        if not any(arg in ("+clientport", "-sim_default_ports") for arg in args):
            argv += ["+clientport", str(free_port())]
        if not any(arg in ("-nohltv", "-sim_default_ports") for arg in args):
            argv.append("-nohltv")
        process = StandinProcess([*argv, *args], game_root, standin_env(env))
        started.append(process)
        server = Srcds(process, port, game_root)
        if ready:
            wait_until_answering(server.address, process)
        return server

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def start_webapi(tmp_path: Path) -> Iterator[Callable[..., WebApi]]:
    """`start_webapi(*args)`, e.g. `start_webapi("--generate", "6")`; waits for the URL line."""
    started: list[StandinProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> WebApi:
        argv = [sys.executable, "-m", "standins.webapi", "--port", "0", *args]
        process = StandinProcess(argv, tmp_path, standin_env(env))
        started.append(process)
        line = process.wait_for_line("listening on ")
        return WebApi(process, line.rsplit(" ", 1)[1])

    yield start
    for process in started:
        process.stop()


def run_standin(
    module_or_script: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run a one-shot stand-in (steamcmd) to completion, stdout and stderr merged."""
    return subprocess.run(
        module_or_script,
        cwd=cwd,
        env=standin_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        timeout=timeout,
        check=False,
    )
