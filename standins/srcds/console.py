"""srcds-style console output: one line at a time, flushed, so a journal shows it live."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable, Iterator

_lock = threading.Lock()


def say(line: str) -> None:
    # Threads (A2S, RCON, scheduler) print concurrently; the lock keeps lines whole.
    with _lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class PrintedLine(str):
    """A console line srcds writes with several print calls (e.g. a `status` row, then its
    address, then the newline). RCON output is cut between print calls, not only between
    lines, so the pieces matter to anyone reading raw RCON packets."""

    pieces: tuple[str, ...]

    def __new__(cls, *pieces: str) -> PrintedLine:
        line = super().__new__(cls, "".join(pieces))
        line.pieces = pieces
        return line


def print_calls(lines: Iterable[str]) -> Iterator[str]:
    """The print calls srcds makes for these lines: one per plain line (text and newline
    together), and for a PrintedLine each piece, then the newline on its own."""
    for line in lines:
        if isinstance(line, PrintedLine):
            yield from line.pieces
            yield "\n"
        else:
            yield line + "\n"
