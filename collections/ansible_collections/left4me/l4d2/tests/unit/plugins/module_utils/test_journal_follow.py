"""The logs verb's follow stream (left4me-read): new entries written as they arrive, masked
as a page is, and the stream ending when its reader goes, its time is up or journalctl
fails, with journalctl stopped each time. A script stands in for journalctl here; on a
booted host: tests/ui/domain/test_log_follow_on_host.py."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import threading
import time

import pytest

try:
    from ansible_collections.left4me.l4d2.plugins.module_utils import (
        _journal,
        _journal_follow,
        _read_request,
    )
except ImportError:  # plain pytest from the repo root: make the collection importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))
    from ansible_collections.left4me.l4d2.plugins.module_utils import (
        _journal,
        _journal_follow,
        _read_request,
    )

UNIT = "left4me-server@coop1.service"


def entry(n: int, message: str) -> str:
    return json.dumps({"__CURSOR": f"s=a;i={n}", "__REALTIME_TIMESTAMP": "1764261612000000",
                       "SYSLOG_IDENTIFIER": "srcds_run", "MESSAGE": message})


class Lines:
    """The stream's stdout: what was written, one JSON message a line."""

    def __init__(self) -> None:
        self.text = ""
        self.closed = False

    def write(self, text: str) -> None:
        if self.closed:
            raise BrokenPipeError(32, "Broken pipe")
        self.text += text

    def flush(self) -> None:
        pass

    def messages(self) -> list[dict]:
        return [json.loads(line) for line in self.text.splitlines()]


class Journal:
    """A stand-in journalctl (a Python script), the argv it was started with and its pid."""

    def __init__(self, script: str) -> None:
        self.script, self.argv, self.process = script, None, None

    def __call__(self, argv, **kwargs):
        self.argv = argv
        self.process = subprocess.Popen([sys.executable, "-c", self.script], **kwargs)
        return self.process


def following(journal: Journal, out: Lines, seconds: float = 30, cursor: str | None = "s=a;i=0"):
    """The stream in a thread, fed by a pipe the test holds (its stdin); (thread, result,
    the pipe's write end)."""
    read_end, write_end = os.pipe()
    result: list[int] = []

    def run():
        try:
            result.append(_journal_follow.stream(UNIT, cursor, ["sekrit"], seconds, read_end,
                                                 out, popen=journal))
        finally:
            os.close(read_end)
    thread = threading.Thread(target=run)
    thread.start()
    return thread, result, write_end


def wait_until(predicate, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


TWO_THEN_WAIT = f"""
import sys, time
print({entry(1, "first")!r}, flush=True)
time.sleep(0.2)
sys.stdout.write({entry(2, "rcon_password sekrit")!r} + "\\n" + {entry(3, "x" * 3000)[:20]!r})
sys.stdout.flush()
time.sleep(0.2)
print({entry(3, "x" * 3000)[20:]!r}, flush=True)
time.sleep(600)
"""


def test_entries_are_written_as_they_arrive_masked_and_closing_stdin_ends_it():
    journal, out = Journal(TWO_THEN_WAIT), Lines()
    thread, result, stdin = following(journal, out)
    assert wait_until(lambda: len(out.messages()) == 3), out.text
    first, second, third = out.messages()
    assert first["lines"] == ["2025-11-27T16:40:12.000000Z srcds_run: first"]
    assert first["cursor"] == "s=a;i=1" and first["unit"] == UNIT
    # A line cut between two reads is written once it is whole; the password is masked.
    assert second["lines"][0].endswith("rcon_password ********") and second["cursor"] == "s=a;i=2"
    assert len(third["entries"][0]["message"]) == _journal.MAX_LINE_CHARS
    assert third["truncated_lines"] == 1 and "sekrit" not in out.text
    assert journal.argv[-1] == "--after-cursor=s=a;i=0" and "--follow" in journal.argv
    os.close(stdin)  # the reader is gone
    thread.join(10)
    assert result == [0] and journal.process.poll() is not None  # journalctl stopped


def test_its_time_ends_it_and_stops_journalctl():
    journal, out = Journal("import time; time.sleep(600)"), Lines()
    started = time.monotonic()
    thread, result, stdin = following(journal, out, seconds=0.3)
    thread.join(10)
    os.close(stdin)
    assert result == [0] and 0.3 <= time.monotonic() - started < 5
    assert journal.process.poll() is not None and out.text == ""


def test_a_reader_that_closed_stdout_ends_it():
    journal, out = Journal(TWO_THEN_WAIT), Lines()
    out.closed = True
    thread, result, stdin = following(journal, out)
    thread.join(10)
    os.close(stdin)
    assert result == [0] and journal.process.poll() is not None


def test_journalctl_failing_is_said():
    journal = Journal("import sys; sys.stderr.write('Failed to seek to cursor'); sys.exit(1)")
    out = Lines()
    thread, result, stdin = following(journal, out)
    thread.join(10)
    os.close(stdin)
    assert result == [1]
    assert out.messages() == [{"failed": True, "msg": "journalctl --follow ended (rc 1):"
                                                      " Failed to seek to cursor"}]


def test_the_follow_command_is_journalctls_after_the_cursor_or_from_the_start():
    assert _journal_follow.follow_argv(UNIT, None)[-2:] == ["--follow", "--lines=all"]
    assert _journal_follow.follow_argv(UNIT, "s=1;i=2")[-1] == "--after-cursor=s=1;i=2"
    with pytest.raises(_journal.JournalError, match="cursor must be"):
        _journal_follow.follow_argv(UNIT, "s=1 --since=x")


def test_a_refused_follow_request_answers_once_and_streams_nothing():
    stdout = Lines()
    request = {"verb": "logs", "instance": "Coop", "args": {"follow": True}}
    status = _read_request.respond(__import__("io").BytesIO(json.dumps(request).encode()),
                                   stdout, lambda argv: (0, "", ""))
    assert status == 1 and [m["failed"] for m in stdout.messages()] == [True]
    assert "instance name" in stdout.messages()[0]["msg"]
