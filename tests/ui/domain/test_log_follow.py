"""The log panel's follower without a host: a script stands in for the host's left4me-read
(its follow mode of the logs verb over a journal kept in a file, one line per entry), so
the buffer, the follower's lifecycle (watched, idle, lost, refused, unable) and the
registry are checked with real processes and pipes. On a booted host, over SSH:
test_log_follow_on_host.py."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from left4me_ui import blueprints, host_reads, live, log_follow, servers
from left4me_ui.authz import NotFound

# left4me-read's follow mode, as the host answers it: the journal is `journal` (a line an
# entry, the cursor of line n is `c=n`); `mode` says how this host behaves.
FAKE_READ = r"""
import json, os, select, sys
state, mode = sys.argv[1], open(sys.argv[1] + "/mode").read().strip()
request = json.loads(sys.stdin.readline())
with open(state + "/requests", "a") as log:
    log.write(json.dumps(request) + "\n")
alive = f"{state}/alive-{os.getpid()}"
open(alive, "w").close()
def say(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()
def journal():
    with open(state + "/journal") as text:
        return text.read().splitlines()
try:
    if mode == "refuse":
        say({"failed": True, "msg": "instance 'coop1' is not configured on this host"})
        sys.exit(1)
    if mode == "old":
        say({"failed": True, "msg": "left4me-read: logs: unsupported arguments: follow"})
        sys.exit(2)
    if mode == "missing":
        sys.stderr.write("python3: can't open file '/usr/local/libexec/left4me/left4me-read'")
        sys.exit(2)
    cursor = request["args"].get("cursor")
    if cursor and mode == "other-journal":
        say({"failed": True, "msg": "journalctl failed (rc 1): Failed to seek to cursor"})
        open(state + "/mode", "w").write("follow")
        sys.exit(1)
    lines = journal()
    seen = int(cursor[2:]) if cursor else max(0, len(lines) - request["args"]["lines"])
    say({"lines": lines[seen:], "cursor": f"c={len(lines)}" if lines else cursor})
    seen = len(lines)
    while True:
        if select.select([0], [], [], 0.01)[0] and not os.read(0, 100):
            break  # the reader closed stdin
        if open(state + "/mode").read().strip() == "lose":
            open(state + "/mode", "w").write("follow")
            sys.exit(255)  # as ssh exits when its connection is gone
        lines = journal()
        if len(lines) > seen:
            say({"lines": lines[seen:], "cursor": f"c={len(lines)}"})
            seen = len(lines)
finally:
    os.remove(alive)
"""


@pytest.fixture
def host(tmp_path: Path):
    """The stand-in host's state: its journal, how it behaves, what it was asked."""
    (tmp_path / "journal").write_text("one\ntwo\n")
    (tmp_path / "mode").write_text("follow")
    (tmp_path / "requests").write_text("")
    (tmp_path / "read.py").write_text(FAKE_READ)
    return tmp_path


def requests(host: Path) -> list[dict]:
    return [json.loads(line) for line in (host / "requests").read_text().splitlines()]


def alive(host: Path) -> list[Path]:
    return list(host.glob("alive-*"))


def write(host: Path, *lines: str) -> None:
    with (host / "journal").open("a") as journal:
        journal.write("".join(f"{line}\n" for line in lines))


def request(cursor: str | None) -> bytes:
    args = {"lines": 200, "follow": True, **({"cursor": cursor} if cursor else {})}
    return json.dumps({"verb": "logs", "instance": "coop1", "args": args}).encode()


@pytest.fixture
def started(host: Path):
    """A follower of the stand-in host, watched by the test; stopped at the end."""
    made: list[log_follow.Follower] = []

    def start(idle_seconds: float = 30.0) -> log_follow.Follower:
        follower = log_follow.Follower([sys.executable, str(host / "read.py"), str(host)],
                                       request, idle_seconds=idle_seconds).start()
        made.append(follower)
        return follower
    yield start
    for follower in made:
        follower.stop()


def shows(follower: log_follow.Follower, line: str, timeout: float = 5.0) -> log_follow.LogView:
    """Wait (looking, as a page does) until `line` is in the buffer; the view then."""
    deadline = time.monotonic() + timeout
    view = follower.look()
    while line not in view.lines and time.monotonic() < deadline:
        view = follower.buffer.wait(view.version, 0.1)
        follower.look()
    assert line in view.lines, view
    return view


def test_a_new_journal_line_is_in_the_buffer_as_soon_as_the_host_sends_it(host, started):
    follower = started()
    view = shows(follower, "two")
    assert view.lines == ("one", "two") and view.cursor == "c=2" and view.connected
    written = time.monotonic()
    write(host, "three")
    view = shows(follower, "three")
    assert time.monotonic() - written < 0.5
    assert view.lines == ("one", "two", "three") and view.cursor == "c=3"
    assert len(requests(host)) == 1  # one stream, no request per line


def test_nobody_looking_stops_it_and_the_host_side_ends(host, started):
    follower = started(idle_seconds=0.5)
    shows(follower, "two")
    assert len(alive(host)) == 1
    follower.join(5)  # nobody looks any more
    assert not follower.running and follower.process.poll() is not None
    assert alive(host) == []  # the stream's stdin closed: it ended
    assert not follower.look().connected


def test_a_lost_connection_is_followed_again_after_the_cursor(host, started):
    follower = started()
    shows(follower, "two")
    (host / "mode").write_text("lose")
    write(host, "three")
    shows(follower, "three")
    write(host, "four")  # after the loss: the second stream brings it
    view = shows(follower, "four")
    assert view.lines == ("one", "two", "three", "four")  # nothing twice, nothing lost
    cursors = [r["args"].get("cursor") for r in requests(host)]
    # The second stream was asked after the last line the first one brought.
    assert len(cursors) == 2 and cursors[0] is None and cursors[1] in ("c=2", "c=3"), cursors


def test_a_cursor_of_another_journal_starts_again_from_the_tail(host, started):
    follower = started()
    shows(follower, "two")
    (host / "journal").write_text("rebuilt\n")  # the host was wiped and converged again
    (host / "mode").write_text("other-journal")
    follower.process.stdin.close()  # the stream ends (as at its lifetime's end)
    view = shows(follower, "rebuilt")
    assert view.lines == ("rebuilt",) and view.error is None


def test_a_refusal_is_said_and_asked_again(host, started):
    (host / "mode").write_text("refuse")
    follower = started()
    deadline = time.monotonic() + 5
    while follower.look().error is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert follower.look().error == "instance 'coop1' is not configured on this host"
    (host / "mode").write_text("follow")
    assert shows(follower, "two").error is None  # asked again, and this time it follows
    assert follower.unavailable is None


@pytest.mark.parametrize("mode, says", [
    ("old", "cannot follow: left4me-read: logs: unsupported arguments: follow"),
    ("missing", "no usable left4me-read (exit 2): python3: can't open file"),
])
def test_a_host_that_cannot_follow_is_left_to_cursor_reads(host, mode, says):
    (host / "mode").write_text(mode)
    followers = log_follow.Followers()

    def make():
        return log_follow.Follower([sys.executable, str(host / "read.py"), str(host)], request)
    follower = followers.look("alpha/coop1", make)
    follower.join(5)
    assert says in str(follower.unavailable)
    for _ in range(3):  # later looks are told the same, and nothing is asked again
        assert followers.look("alpha/coop1", make) is follower
    assert len(requests(host)) == 1


def test_one_follower_per_server_shared_by_its_pages_and_a_new_one_after_it_stopped(host):
    followers = log_follow.Followers()

    def make():
        return log_follow.Follower([sys.executable, str(host / "read.py"), str(host)], request)
    first = followers.look("alpha/coop1", make)
    assert followers.look("alpha/coop1", make) is first  # a second page, the same stream
    shows(first, "two")
    first.stop()
    assert not first.running and alive(host) == []
    second = followers.look("alpha/coop1", make)
    assert second is not first and shows(second, "two").lines == ("one", "two")
    followers.stop_all()
    assert alive(host) == [] and len(requests(host)) == 2


def test_the_buffer_keeps_the_newest_lines_and_wakes_waiters():
    buffer = log_follow.LogBuffer(keep=3)
    before = buffer.view()
    buffer.add(["a", "b"], "c=2")
    buffer.add(["c", "d"], None)
    view = buffer.wait(before.version, 0)
    assert view.lines == ("b", "c", "d") and view.cursor == "c=2"
    started = time.monotonic()
    assert buffer.wait(view.version, 0.1) == view and time.monotonic() - started >= 0.1


def test_a_lines_time_is_journalds():
    assert log_follow.line_time("2026-12-08T00:21:07.591731Z sh: Console: hi") == 1796689267.591731
    assert log_follow.line_time("no time here") is None


def test_the_request_follows_after_the_cursor_over_the_kept_connection(tmp_path):
    target = host_reads.ssh_target("alpha", {"ansible_host": "192.0.2.10"})
    follower = log_follow.ssh_follower(target, tmp_path, "coop1", 200)
    assert follower.command == host_reads.ssh_argv(target, tmp_path)
    assert json.loads(follower.request("s=1")) == {
        "verb": "logs", "instance": "coop1",
        "args": {"lines": 200, "follow": True, "cursor": "s=1"}}
    assert "cursor" not in json.loads(follower.request(None))["args"]


@pytest.fixture
def alice_server(core, alice) -> int:
    blueprint = blueprints.create(core, alice, "coop", ["demo-config"],
                                  blueprints.BlueprintSettings(hostname="Alice coop"))
    return servers.create(core, alice, "alice1", "alpha", blueprint.id)[0]


def test_the_log_is_followed_only_for_who_may_see_it_and_only_on_the_fast_path(
        core, alice, bob, alice_server, monkeypatch):
    looked: list[tuple[object, log_follow.Follower]] = []

    def look(key, make):  # as FOLLOWERS.look, but no stream is started
        looked.append((key, make()))
        return looked[-1][1]
    monkeypatch.setattr(log_follow.FOLLOWERS, "look", look)
    with pytest.raises(NotFound):
        live.follow_log(core, bob, alice_server)
    assert looked == []
    monkeypatch.setattr(core, "settings", replace(core.settings, fast_reads=False))
    assert live.follow_log(core, alice, alice_server) is None  # read by cursor, as before
    assert looked == []
    monkeypatch.setattr(core, "settings", replace(core.settings, fast_reads=True))
    view = live.follow_log(core, alice, alice_server)
    assert view is not None and view.lines == () and len(looked) == 1
    follower = looked[0][1]
    assert json.loads(follower.request(None))["instance"] == "alice1"
    assert follower.command[-len(host_reads.ENTRY_POINT):] == list(host_reads.ENTRY_POINT)
