# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# Shipped to hosts verbatim: standard library only (tests/collection/test_host_libraries.py).
"""srcds's RCON ``status`` output, parsed into players, standard library only.

The layouts seen in real captures (Source engine branches differ in the slot column
and in what follows the state)::

    hostname: left4me demo coop
    map     : c1m1_hotel
    players : 2 humans, 2 bots (8 max) (not hibernating) (unreserved)

    # userid name uniqueid connected ping loss state rate adr
    #  2 1 "Veteran" STEAM_1:1:41813649  2:05:07 64 0 active 30000 127.0.0.4:27005
    # 4 "Coach" BOT active
    #  6 5 "Newcomer" STEAM_1:0:21133858 01:05 80 0 active 30000 127.0.0.8:27005
    #end

L4D2 and CS:GO print ``userid slot "name"``; TF2 and older branches print
``userid "name"`` with no slot, and ``[U:1:N]`` ids. Bot rows carry ``BOT`` where
the Steam id would be and nothing else but their state (CS:GO adds a rate).
``connected`` is ``MM:SS``, or ``H:MM:SS`` once an hour has passed (the hour
right-aligned in two columns). Names may contain quotes and spaces, so the name is
everything between the first quote and the last quote before the Steam id.

A line that looks like a player row but does not parse is reported in ``problems``
with its number; it never raises: one odd name must not hide everyone else.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

# '#', userid, optional slot, "name" (greedy up to the last quote followed by an id).
_ROW_RE = re.compile(
    r'^#\s*(?P<userid>\d+)(?:\s+(?P<slot>\d+))?\s+"(?P<name>.*)"\s+(?P<rest>\S.*)$'
)
_DURATION_RE = re.compile(r"^(?:(?P<h>\d+):)?(?P<m>\d{1,2}):(?P<s>\d{2})$")
_HEADER_RE = re.compile(r"^(?P<key>hostname|map|players|version|udp/ip|os)\s*:\s?(?P<value>.*)$")
_PLAYER_COUNTS_RE = re.compile(r"(\d+)\s+humans?,\s*(\d+)\s+bots?\s*\((\d+)(?:/\d+)?\s+max\)")
MAX_PROBLEMS = 20
MAX_PROBLEM_CHARS = 200


@dataclass
class StatusPlayer:
    userid: int
    name: str
    bot: bool
    slot: int | None = None
    steam_id: str | None = None
    connected: str | None = None
    connected_seconds: int | None = None
    ping: int | None = None
    loss: int | None = None
    state: str | None = None
    rate: int | None = None
    address: str | None = None


@dataclass
class StatusReport:
    hostname: str | None = None
    map: str | None = None
    humans: int | None = None
    bots: int | None = None
    max_players: int | None = None
    players: list[StatusPlayer] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


class StatusLineError(ValueError):
    """One row of ``status`` that does not parse."""


def parse_duration(text: str) -> int:
    """Seconds in ``MM:SS`` or ``H:MM:SS`` (srcds's COM_FormatSeconds); ValueError otherwise."""
    match = _DURATION_RE.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration (MM:SS or H:MM:SS)")
    hours = int(match.group("h") or 0)
    minutes, seconds = int(match.group("m")), int(match.group("s"))
    if seconds > 59 or (match.group("h") is not None and minutes > 59):
        raise ValueError(f"{text!r} is not a duration (minutes and seconds run to 59)")
    return hours * 3600 + minutes * 60 + seconds


def _int(text: str, what: str) -> int:
    if not text.isdigit():
        raise StatusLineError(f"{what} {text!r} is not a number")
    return int(text)


def parse_row(line: str) -> StatusPlayer:
    """One player row; StatusLineError when it does not parse."""
    match = _ROW_RE.match(line.strip())
    if not match:
        raise StatusLineError('expected `# userid [slot] "name" uniqueid ...`')
    userid = int(match.group("userid"))
    slot = int(match.group("slot")) if match.group("slot") is not None else None
    name = match.group("name")
    fields = match.group("rest").split()
    if fields[0] == "BOT":
        state = fields[1] if len(fields) > 1 else None
        return StatusPlayer(userid=userid, name=name, bot=True, slot=slot, state=state)
    if len(fields) < 5:
        raise StatusLineError(
            f"a player row needs uniqueid, connected, ping, loss and state; got {len(fields)}"
            " fields after the name"
        )
    steam_id, connected, ping, loss, state = fields[:5]
    try:
        seconds = parse_duration(connected)
    except ValueError as exc:
        raise StatusLineError(str(exc)) from None
    rate = _int(fields[5], "rate") if len(fields) > 5 else None
    return StatusPlayer(
        userid=userid,
        name=name,
        bot=False,
        slot=slot,
        steam_id=steam_id,
        connected=connected,
        connected_seconds=seconds,
        ping=_int(ping, "ping"),
        loss=_int(loss, "loss"),
        state=state,
        rate=rate,
        address=fields[6] if len(fields) > 6 else None,
    )


def _problem(number: int, line: str, why: str) -> str:
    shown = line if len(line) <= MAX_PROBLEM_CHARS else line[: MAX_PROBLEM_CHARS - 3] + "..."
    return f"line {number}: {why}: {shown}"


def parse_status(text: str) -> StatusReport:
    """Players and the header of ``status`` output; odd rows land in ``problems``."""
    report = StatusReport()
    in_table = False
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            if line == "#end":
                in_table = False
                continue
            if line.lstrip("# ").startswith("userid"):
                in_table = True
                continue
            try:
                report.players.append(parse_row(line))
            except StatusLineError as exc:
                if len(report.problems) < MAX_PROBLEMS:
                    report.problems.append(_problem(number, line, str(exc)))
            continue
        header = _HEADER_RE.match(line)
        if header and not in_table:
            _read_header(report, header.group("key"), header.group("value").strip())
    return report


def _read_header(report: StatusReport, key: str, value: str) -> None:
    if key == "hostname":
        report.hostname = value
    elif key == "map":
        # CS:GO appends the position: "de_dust2 at: 0 x, 0 y, 0 z".
        report.map = value.split(" at:")[0].split()[0] if value else ""
    elif key == "players":
        counts = _PLAYER_COUNTS_RE.search(value)
        if counts:
            report.humans, report.bots, report.max_players = (int(g) for g in counts.groups())
