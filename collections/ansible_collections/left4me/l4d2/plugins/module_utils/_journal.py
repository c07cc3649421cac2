# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# Shipped to hosts verbatim: standard library only (tests/collection/test_host_libraries.py).
"""An instance unit's journal, read in bounded pages with cursors, standard library only.

``journalctl -o json`` prints one object a line; each carries ``__CURSOR``, an opaque
position. A reader asks for the last N lines first, then, to follow, for the lines
after the cursor of the last line it has: ``--after-cursor=C --lines=+N`` (the
oldest N after C; systemd 254+). One line more than asked is read so the caller
learns whether more are waiting. The next cursor is the last entry's, or the one
given when nothing new came, so following never skips or repeats a line.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

MAX_LINES = 5000
MAX_LINE_CHARS = 2000
DEFAULT_MAX_BYTES = 256 * 1024
# journald cursors are `key=hex;key=hex;...` (s, i, b, m, t, x).
_CURSOR_RE = re.compile(r"[A-Za-z0-9=;]{1,512}")
SECRET_MASK = "********"
_SECRET_CVAR_RE = re.compile(r"\b((?:rcon_password|sv_password)\b[\s\"=]*)([^\s\";]+)", re.I)


class JournalError(ValueError):
    """A bad request (cursor, bounds); the message says what is allowed."""


def validate_cursor(cursor: object) -> str:
    if not isinstance(cursor, str) or not _CURSOR_RE.fullmatch(cursor):
        raise JournalError(
            "cursor must be a journal cursor as returned by a previous call"
            " (letters, digits, '=' and ';')"
        )
    return cursor


def journalctl_argv(unit: str, lines: int, cursor: str | None = None) -> list[str]:
    """The journalctl command for the last ``lines`` entries, or the ``lines`` after cursor.

    One more than asked is requested so :func:`page` can tell whether more are waiting.
    """
    if not 1 <= lines <= MAX_LINES:
        raise JournalError(f"lines must be between 1 and {MAX_LINES}, got {lines}")
    argv = ["journalctl", f"--unit={unit}", "--output=json", "--no-pager", "--quiet"]
    if cursor is None:
        return argv + [f"--lines={lines}"]
    return argv + [f"--after-cursor={validate_cursor(cursor)}", f"--lines=+{lines + 1}"]


def entry_message(entry: dict) -> str:
    """MESSAGE as text: journald stores non-UTF-8 messages as a list of byte values."""
    message = entry.get("MESSAGE")
    if isinstance(message, list):
        with contextlib.suppress(TypeError, ValueError):
            return bytes(message).decode("utf-8", "replace")
        return ""
    return message if isinstance(message, str) else ""


def parse_json_lines(text: str) -> list[dict]:
    """Entries of ``journalctl -o json``; a line that is not an object is skipped."""
    entries = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict):
                entries.append(entry)
    return entries


def mask_secrets(text: str, secrets: Sequence[str] = ()) -> str:
    """Known secrets and any password cvar's value masked (a cfg echoed into the log)."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, SECRET_MASK)
    return _SECRET_CVAR_RE.sub(lambda m: m.group(1) + SECRET_MASK, text)


def iso_time(entry: dict) -> str | None:
    micros = entry.get("__REALTIME_TIMESTAMP")
    try:
        seconds = int(micros) / 1_000_000
    except (TypeError, ValueError):
        return None
    fraction = f"{int(micros) % 1_000_000:06d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction}Z"


@dataclass
class Page:
    entries: list[dict] = field(default_factory=list)
    cursor: str | None = None
    more: bool = False
    truncated_lines: int = 0

    @property
    def lines(self) -> list[str]:
        return [f"{e['time']} {e['identifier']}: {e['message']}" for e in self.entries]


def shown_entry(entry: dict, secrets: Sequence[str]) -> tuple[dict, bool]:
    """What a reader sees of one entry (message bounded, secrets masked), and if it was cut."""
    message = mask_secrets(entry_message(entry).rstrip("\n"), secrets)
    cut = len(message) > MAX_LINE_CHARS
    if cut:
        message = message[: MAX_LINE_CHARS - 3] + "..."
    return dict(
        time=iso_time(entry),
        identifier=str(entry.get("SYSLOG_IDENTIFIER") or entry.get("_COMM") or "?"),
        pid=str(entry.get("_PID") or entry.get("SYSLOG_PID") or ""),
        priority=int(entry["PRIORITY"]) if str(entry.get("PRIORITY", "")).isdigit() else None,
        message=message,
        cursor=str(entry.get("__CURSOR", "")),
    ), cut


def page(entries: Sequence[dict], lines: int, cursor: str | None = None,
         max_bytes: int = DEFAULT_MAX_BYTES, secrets: Sequence[str] = ()) -> Page:
    """The page a reader gets from what :func:`journalctl_argv` read.

    After a cursor, entries come oldest first and at most ``lines`` are kept (``more``
    says whether the extra one was there). For a tail, the last ``lines`` are kept. In
    both, the page stops before ``max_bytes`` of messages (``more`` then set for a
    follow; a tail drops its OLDEST lines instead, so the newest are always shown).
    """
    result = Page(cursor=cursor)
    chosen = list(entries)
    if cursor is not None:
        result.more = len(chosen) > lines
        chosen = chosen[:lines]
    else:
        chosen = chosen[-lines:]
    shown = []
    for entry in chosen:
        item, cut = shown_entry(entry, secrets)
        result.truncated_lines += cut
        shown.append(item)
    total = 0
    if cursor is not None:
        kept = []
        for item in shown:
            total += len(item["message"]) + 64
            if total > max_bytes and kept:
                result.more = True
                break
            kept.append(item)
    else:
        kept = []
        for item in reversed(shown):
            total += len(item["message"]) + 64
            if total > max_bytes and kept:
                break
            kept.append(item)
        kept.reverse()
    result.entries = kept
    if kept and kept[-1]["cursor"]:
        result.cursor = kept[-1]["cursor"]
    return result
