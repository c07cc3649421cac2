# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# Shipped to hosts verbatim: standard library only (tests/collection/test_host_libraries.py).
"""An instance unit's journal followed as entries arrive, standard library only.

The follow mode of left4me-read's logs verb (``"args": {"follow": true}``, see
``_read_request``): after the logs verb's first page (its checks, refusals and masking,
whole), ``journalctl --follow`` after that page's cursor; each batch of new entries is
written at once as one JSON line shaped like a page (``entries``, ``lines``, ``cursor``),
masked as the page is. The stream ends when its reader closes stdin or stdout (the page
closed, the SSH connection lost), when journalctl ends (said as a failed line), or after
``follow_seconds``: the reader then asks again after its last cursor.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import IO

from ansible_collections.left4me.l4d2.plugins.module_utils._common import LANG_C
from ansible_collections.left4me.l4d2.plugins.module_utils._journal import (
    Page,
    parse_json_lines,
    shown_entry,
    validate_cursor,
)

READ_CHUNK = 64 * 1024  # journalctl's output read at most this much at a time
STOP_GRACE = 2.0  # seconds journalctl gets to end after SIGTERM before SIGKILL


def follow_argv(unit: str, cursor: str | None) -> list[str]:
    """journalctl following the unit after ``cursor`` (None: a unit with no entries yet,
    so every entry it gets from now on)."""
    argv = ["journalctl", f"--unit={unit}", "--output=json", "--no-pager", "--quiet",
            "--follow"]
    if cursor is None:
        return argv + ["--lines=all"]
    return argv + [f"--after-cursor={validate_cursor(cursor)}"]


def batch(unit: str, entries: Sequence[dict], secrets: Sequence[str]) -> dict:
    """New entries as the logs verb's page shows them (messages bounded, secrets masked)."""
    found = Page()
    for entry in entries:
        item, cut = shown_entry(entry, secrets)
        found.entries.append(item)
        found.truncated_lines += cut
    found.cursor = next((e["cursor"] for e in reversed(found.entries) if e["cursor"]), None)
    return dict(changed=False, unit=unit, entries=found.entries, lines=found.lines,
                cursor=found.cursor, more=False, truncated_lines=found.truncated_lines)


def _write(out: IO[str], message: dict) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def _ended(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # so journalctl is stopped on the way out


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def stream(unit: str, cursor: str | None, secrets: Sequence[str], seconds: float,
           stdin_fd: int, out: IO[str], popen: Callable[..., subprocess.Popen] = subprocess.Popen,
           clock: Callable[[], float] = time.monotonic) -> int:
    """Follow ``unit`` after ``cursor`` onto ``out`` until stdin closes, ``out`` is gone,
    journalctl ends or ``seconds`` passed; the exit status (1: journalctl failed)."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError):  # not the main thread (tests): not caught
            signal.signal(signum, _ended)
    process = popen(follow_argv(unit, cursor), stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    env={**os.environ, **LANG_C})
    journal_fd = process.stdout.fileno()
    selector = selectors.DefaultSelector()
    selector.register(journal_fd, selectors.EVENT_READ)
    selector.register(stdin_fd, selectors.EVENT_READ)
    deadline = clock() + seconds
    pending = b""
    try:
        while (left := deadline - clock()) > 0:
            for key, _events in selector.select(left):
                if key.fd == stdin_fd:
                    if not os.read(stdin_fd, 4096):
                        return 0  # the reader closed stdin: nobody watches any more
                    continue  # anything else on stdin is ignored
                chunk = os.read(journal_fd, READ_CHUNK)
                if not chunk:
                    status = process.wait()
                    error = process.stderr.read().decode("utf-8", "replace").strip()
                    _write(out, dict(failed=True, msg=f"journalctl --follow ended (rc {status}):"
                                                      f" {error}"))
                    return 1
                complete, _newline, pending = (pending + chunk).rpartition(b"\n")
                entries = parse_json_lines(complete.decode("utf-8", "surrogateescape"))
                if entries:
                    _write(out, batch(unit, entries, secrets))
        return 0  # its time is up: the reader follows again after its cursor
    except BrokenPipeError:
        return 0  # the reader closed stdout
    finally:
        selector.close()
        _stop(process)
