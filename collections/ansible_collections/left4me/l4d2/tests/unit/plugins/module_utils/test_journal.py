# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Tests for module_utils/_journal.py: the journalctl command, tail and cursor pages that
follow a log without skipping or repeating, size bounds, secrets masked."""

from __future__ import annotations

import json
import pathlib
import sys

import pytest

try:
    from ansible_collections.left4me.l4d2.plugins.module_utils import _journal
except ImportError:  # plain pytest from the repo root: make the collection importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))
    from ansible_collections.left4me.l4d2.plugins.module_utils import _journal

UNIT = "left4me-server@coop1.service"


def entry(number: int, message="line", **extra) -> dict:
    return {
        "__CURSOR": f"s=abc;i={number:x};b=1;m={number:x};t=5f{number:04x};x=9",
        "__REALTIME_TIMESTAMP": str(1_795_000_000_000_000 + number * 1_000_000),
        "SYSLOG_IDENTIFIER": "srcds_run", "_PID": "42", "PRIORITY": "6",
        "MESSAGE": f"{message} {number}", **extra,
    }


class FakeJournal:
    """What journalctl prints for the argv :func:`journalctl_argv` builds, over a list."""

    def __init__(self, entries: list[dict]) -> None:
        self.entries = entries

    def run(self, argv: list[str]) -> str:
        options = dict(arg[2:].split("=", 1) for arg in argv if "=" in arg)
        chosen = self.entries
        if "after-cursor" in options:
            cursors = [e["__CURSOR"] for e in chosen]
            chosen = chosen[cursors.index(options["after-cursor"]) + 1:]
        lines = options["lines"]
        chosen = chosen[: int(lines[1:])] if lines.startswith("+") else chosen[-int(lines):]
        return "\n".join(json.dumps(e) for e in chosen) + "\n"


def read(journal: FakeJournal, lines: int, cursor=None, **kwargs) -> _journal.Page:
    argv = _journal.journalctl_argv(UNIT, lines, cursor)
    return _journal.page(_journal.parse_json_lines(journal.run(argv)), lines, cursor, **kwargs)


def test_the_command_for_a_tail_and_for_a_follow():
    assert _journal.journalctl_argv(UNIT, 50) == [
        "journalctl", f"--unit={UNIT}", "--output=json", "--no-pager", "--quiet", "--lines=50"]
    assert _journal.journalctl_argv(UNIT, 50, "s=1;i=2")[-2:] == [
        "--after-cursor=s=1;i=2", "--lines=+51"]


@pytest.mark.parametrize("cursor", ["--since=yesterday", "s=1 i=2", "", "s=1\n", 7])
def test_a_cursor_that_journald_would_not_have_made_is_refused(cursor):
    with pytest.raises(_journal.JournalError, match="cursor must be"):
        _journal.journalctl_argv(UNIT, 10, cursor)


@pytest.mark.parametrize("lines", [0, -1, 5001])
def test_lines_are_bounded(lines):
    with pytest.raises(_journal.JournalError, match="between 1 and 5000"):
        _journal.journalctl_argv(UNIT, lines)


def test_following_pages_neither_skips_nor_repeats_a_line():
    journal = FakeJournal([entry(i) for i in range(10)])
    tail = read(journal, 3)
    assert [e["message"] for e in tail.entries] == ["line 7", "line 8", "line 9"]
    assert tail.cursor == journal.entries[9]["__CURSOR"]
    nothing_new = read(journal, 5, tail.cursor)
    assert nothing_new.entries == [] and not nothing_new.more
    assert nothing_new.cursor == tail.cursor  # follow again from the same place
    journal.entries += [entry(i) for i in range(10, 23)]
    seen = []
    cursor = tail.cursor
    pages = 0
    while True:
        got = read(journal, 5, cursor)
        pages += 1
        seen += [e["message"] for e in got.entries]
        cursor = got.cursor
        if not got.more:
            break
    assert seen == [f"line {i}" for i in range(10, 23)]
    assert pages == 3


def test_a_page_stops_at_max_bytes_and_a_tail_keeps_the_newest():
    journal = FakeJournal([entry(i, "x" * 900) for i in range(20)])
    tail = read(journal, 20, max_bytes=4096)
    assert [e["message"][-2:] for e in tail.entries] == ["16", "17", "18", "19"]
    follow = read(journal, 20, journal.entries[0]["__CURSOR"], max_bytes=4096)
    assert len(follow.entries) == 4 and follow.more
    assert follow.cursor == journal.entries[4]["__CURSOR"]


def test_a_long_message_is_cut_and_counted():
    page = _journal.page([entry(1, "y" * 5000)], 10)
    assert len(page.entries[0]["message"]) == _journal.MAX_LINE_CHARS
    assert page.truncated_lines == 1


def test_passwords_are_masked_and_binary_messages_read():
    entries = [
        entry(1, 'rcon from "127.0.0.1": command "rcon_password hunter2"'),
        entry(2, "exec says sv_password \"joinme\" and pw s3cret"),
        {**entry(3), "MESSAGE": list(b"caf\xc3\xa9 \xff")},
    ]
    shown = [e["message"] for e in _journal.page(entries, 10, secrets=["s3cret"]).entries]
    assert "hunter2" not in shown[0] and "********" in shown[0]
    assert "joinme" not in shown[1] and "s3cret" not in shown[1]
    assert shown[2].startswith("café ")


def test_each_line_has_its_time_and_who_logged_it():
    page = _journal.page([entry(1, "Segmentation fault")], 10)
    assert page.lines == ["2026-11-18T11:06:41.000000Z srcds_run: Segmentation fault 1"]
    assert page.entries[0]["priority"] == 6


def test_lines_that_are_not_json_objects_are_skipped():
    assert _journal.parse_json_lines('{"MESSAGE": "a"}\nnot json\n[1]\n\n') == [{"MESSAGE": "a"}]


def test_journal_json_with_binary_messages_and_junk():
    text = "\n".join([json.dumps({"MESSAGE": list(b"caf\xc3\xa9 \xff"), "_PID": "9"}),
                      "not json", json.dumps({"MESSAGE": "plain", "_PID": "9"})])
    entries = _journal.parse_json_lines(text)
    assert [_journal.entry_message(e) for e in entries] == ["café \ufffd", "plain"]
