"""srcds-style console output: one line at a time, flushed, so a journal shows it live."""

from __future__ import annotations

import sys
import threading

_lock = threading.Lock()


def say(line: str) -> None:
    # Threads (A2S, RCON, scheduler) print concurrently; the lock keeps lines whole.
    with _lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
