"""A server's journal followed over the kept SSH connection into a buffer in memory.

One Follower per (host, instance) that a page watches: a thread running the follow mode of
`left4me-read`'s logs verb (the page, then new entries as journald gets them) over
host_reads' connection, appending each batch to a LogBuffer. Pages only look at the buffer
(`Followers.look`: no host request), so a panel can redraw often and show a new line
within a fraction of a second. Nobody looking for `idle_seconds` (the page was closed)
stops it: its stdin is closed, so the host's left4me-read and journalctl end too. A stream
that ends (a lost SSH master, the host's maximum lifetime) is started again after the last
cursor, a refused cursor (another journal: the host was rebuilt) from the tail; a host whose
left4me-read cannot follow (missing, or older) makes the follower `unavailable`, and the
caller reads by cursor instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from left4me_ui.host_reads import SshTarget, ssh_argv, ssh_failure

KEEP_LINES = 1000  # lines a buffer keeps (the panel shows them all)
PANEL_SECONDS = 0.25  # how often an open log panel redraws from the buffer
IDLE_SECONDS = 15.0  # nobody looked this long: the page is closed, the follower stops
POLL_SECONDS = 0.2  # how often a follower checks whether it is still watched
STOP_SECONDS = 3.0  # how long a stopped stream may take to end before it is killed
RETRY_SECONDS = (0.0, 0.5, 1.0, 2.0, 5.0)  # waits before the 1st, 2nd... try after failures
MIN_STREAM_SECONDS = 1.0  # a stream that ended sooner is tried again as after a failure
UNAVAILABLE_SECONDS = 600.0  # a host that cannot follow is read by cursor this long
SSH_FAILED = 255


@dataclass(frozen=True)
class LogView:
    """What a page shows: the kept lines, the cursor of the last, and what went wrong."""

    lines: tuple[str, ...]
    cursor: str | None
    version: int  # grows with each change: a page redraws only when it moved
    error: str | None  # the last failure, until lines come again (safe to show)
    connected: bool  # a stream is open now


def line_time(line: str) -> float | None:
    """When journald got a shown line (its leading ISO time), as a Unix time; None if none."""
    try:
        return datetime.fromisoformat(line.split(" ", 1)[0].replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class LogBuffer:
    """The followed lines (the last `keep`), thread safe; waiters wake on each change."""

    def __init__(self, keep: int = KEEP_LINES) -> None:
        self._lines: deque[str] = deque(maxlen=keep)
        self._cursor: str | None = None
        self._version = 0
        self._error: str | None = None
        self._connected = False
        self._changed = threading.Condition()

    def add(self, lines: list[str], cursor: str | None) -> None:
        with self._changed:
            self._lines.extend(lines)
            self._cursor = cursor or self._cursor
            self._error = None
            self._bump()

    def restart(self) -> None:
        """A new tail comes (the cursor was refused): what was kept is replaced by it."""
        with self._changed:
            self._lines.clear()
            self._cursor = None
            self._bump()

    def state(self, *, connected: bool | None = None, error: str | None = None) -> None:
        with self._changed:
            if connected is not None:
                self._connected = connected
            if error is not None:
                self._error = error
            self._bump()

    @property
    def cursor(self) -> str | None:
        with self._changed:
            return self._cursor

    def view(self) -> LogView:
        with self._changed:
            return LogView(tuple(self._lines), self._cursor, self._version, self._error,
                           self._connected)

    def wait(self, version: int, timeout: float) -> LogView:
        """The view once its version passed `version`, or as it is after `timeout`."""
        with self._changed:
            self._changed.wait_for(lambda: self._version > version, timeout)
            return self.view()

    def _bump(self) -> None:
        self._version += 1
        self._changed.notify_all()


class Follower:
    """One followed journal: `command` is the argv that reaches the host's left4me-read
    (ssh over the kept connection), `request(cursor)` the request line it is sent."""

    def __init__(self, command: list[str], request: Callable[[str | None], bytes],
                 idle_seconds: float = IDLE_SECONDS, keep: int = KEEP_LINES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.command, self.request = command, request
        self.idle_seconds, self.clock = idle_seconds, clock
        self.buffer = LogBuffer(keep)
        self.unavailable: str | None = None  # why this host cannot follow (read by cursor)
        self.ended_at: float | None = None
        self._looked = clock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="log-follow")
        self.process: subprocess.Popen | None = None  # the running stream (tests look)

    def start(self) -> Follower:
        self._thread.start()
        return self

    def look(self) -> LogView:
        """Mark it watched now; what it holds."""
        self._looked = self.clock()
        return self.buffer.view()

    def stop(self) -> None:
        """Stop now (as if nobody looked any more) and wait until its stream ended."""
        self._stop.set()
        self.join(STOP_SECONDS * 2)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _watched(self) -> bool:
        return not self._stop.is_set() and self.clock() - self._looked < self.idle_seconds

    def _run(self) -> None:
        failures = 0
        try:
            while self._watched():
                began = self.clock()
                outcome, answered = self._follow_once()
                if outcome in ("stopped", "unavailable"):
                    return
                if outcome == "restarted" or (outcome == "ended"
                                              and self.clock() - began >= MIN_STREAM_SECONDS):
                    failures = 0
                    continue
                failures = 1 if answered else failures + 1  # a stream that ran: start over
                self._stop.wait(RETRY_SECONDS[min(failures - 1, len(RETRY_SECONDS) - 1)])
        finally:
            self.ended_at = self.clock()
            self.buffer.state(connected=False)

    def _follow_once(self) -> tuple[str, bool]:
        """One stream, until it ends or nobody looks: stopped, ended (the host ended it: its
        lifetime), lost (SSH), refused (said), restarted (a refused cursor) or unavailable;
        and whether the host answered at all."""
        cursor = self.buffer.cursor
        with tempfile.TemporaryFile() as errors:
            try:
                process = subprocess.Popen(self.command, stdin=subprocess.PIPE,
                                           stdout=subprocess.PIPE, stderr=errors)
            except OSError as exc:
                self.buffer.state(error=f"could not start ssh: {exc}")
                return "lost", False
            self.process = process
            failure = self._read(process, cursor)
            if failure == "stopped":
                return "stopped", True
            returncode = process.wait()
            errors.seek(0)
            stderr = errors.read().decode("utf-8", "replace")
        self.buffer.state(connected=False)
        return self._outcome(returncode, failure, stderr, cursor), failure != "none"

    def _read(self, process: subprocess.Popen, cursor: str | None) -> str | dict | None:
        """Feed the buffer until the stream's end: "stopped" when nobody looks any more,
        the failed message it ended with, "none" when nothing it said was JSON, else None."""
        with contextlib.suppress(OSError):  # it ended already: its exit says why
            process.stdin.write(self.request(cursor) + b"\n")
            process.stdin.flush()
        fd = process.stdout.fileno()
        selector = selectors.DefaultSelector()
        selector.register(fd, selectors.EVENT_READ)
        pending, failure, answered = b"", None, False
        try:
            while True:
                if not self._watched():
                    _end(process)
                    return "stopped"
                if not selector.select(POLL_SECONDS):
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    return failure if answered else "none"
                complete, _newline, pending = (pending + chunk).rpartition(b"\n")
                for line in complete.splitlines():
                    try:
                        message = json.loads(line)
                    except ValueError:
                        continue
                    if not isinstance(message, dict):
                        continue
                    if not answered:
                        answered = True
                        self.buffer.state(connected=True)
                        if cursor is None and not message.get("failed"):
                            self.buffer.restart()
                    if message.get("failed"):
                        failure = message
                    else:
                        self.buffer.add([str(x) for x in message.get("lines") or []],
                                        message.get("cursor"))
        finally:
            selector.close()

    def _outcome(self, returncode: int, failure: str | dict | None, stderr: str,
                 cursor: str | None) -> str:
        if isinstance(failure, dict):
            message = str(failure.get("msg") or f"left4me-read exited {returncode}")
            if returncode == 2 and "unsupported arguments" in message:
                self.unavailable = f"this host's left4me-read cannot follow: {message}"
                return "unavailable"
            if cursor is not None and "cursor" in message:
                self.buffer.restart()  # another journal (the host rebuilt): the tail again
                return "restarted"
            self.buffer.state(error=message)
            return "refused"
        if failure == "none" and returncode != SSH_FAILED:
            self.unavailable = (f"no usable left4me-read (exit {returncode}):"
                                f" {stderr.strip()[-300:]}")
            return "unavailable"
        if returncode == SSH_FAILED:
            self.buffer.state(error=f"following the log: {ssh_failure('the host', stderr)}")
            return "lost"
        return "ended"


def _end(process: subprocess.Popen) -> None:
    """Close its stdin (left4me-read on the host ends with it, and so does ssh); kill ssh
    if it lingers."""
    with contextlib.suppress(OSError):
        process.stdin.close()
    try:
        process.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Followers:
    """The followers of one process, one per key (host connection, instance)."""

    def __init__(self, idle_seconds: float = IDLE_SECONDS) -> None:
        self.idle_seconds = idle_seconds
        self._running: dict[Hashable, Follower] = {}
        self._lock = threading.Lock()

    def look(self, key: Hashable, make: Callable[[], Follower],
             clock: Callable[[], float] = time.monotonic) -> Follower:
        """The key's follower, started (`make`) when none runs; marked watched. One that
        found its host unable to follow is kept (and not started again) for
        UNAVAILABLE_SECONDS: the caller reads by cursor meanwhile."""
        with self._lock:
            for other, gone in list(self._running.items()):  # stopped: its lines go too
                if other != key and not gone.running and not gone.unavailable:
                    del self._running[other]
            follower = self._running.get(key)
            kept = follower is not None and (follower.running or (
                follower.unavailable and clock() - (follower.ended_at or 0.0)
                < UNAVAILABLE_SECONDS))
            if not kept:
                follower = self._running[key] = make().start()
            follower.look()
            return follower

    def get(self, key: Hashable) -> Follower | None:
        with self._lock:
            return self._running.get(key)

    def stop_all(self) -> None:
        with self._lock:
            followers, self._running = list(self._running.values()), {}
        for follower in followers:
            follower.stop()


def ssh_follower(target: SshTarget, control_dir: Path, instance: str, lines: int) -> Follower:
    """A follower of `instance`'s journal on the host, over its kept SSH connection: the
    last `lines` first, then what comes after the cursor it got to."""
    def request(cursor: str | None) -> bytes:
        args: dict[str, object] = {"lines": lines, "follow": True}
        if cursor:
            args["cursor"] = cursor
        return json.dumps({"verb": "logs", "instance": instance, "args": args}).encode()
    return Follower(ssh_argv(target, control_dir), request)


FOLLOWERS = Followers()  # this process's: one per followed server, shared by its pages
