# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Tests for module_utils/_srcds_status.py: `status` output in the layouts real srcds
branches print (L4D2, CS:GO, TF2), bots, durations, and malformed rows."""

from __future__ import annotations

import pathlib
import sys

import pytest

try:
    from ansible_collections.left4me.l4d2.plugins.module_utils import _rcon, _srcds_status
except ImportError:  # plain pytest from the repo root: make the collection importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))
    from ansible_collections.left4me.l4d2.plugins.module_utils import _rcon, _srcds_status


# L4D2 over RCON (slot column; the address column only over RCON; bots without a rate).
L4D2 = """hostname: left4me demo coop
version : 2.2.4.3 9215 secure  (unknown)
udp/ip  : 0.0.0.0:27015 [ public 203.0.113.10:27015 ]
os      : Linux Dedicated
map     : c1m1_hotel
players : 2 humans, 2 bots (8 max) (not hibernating) (unreserved)

# userid name uniqueid connected ping loss state rate adr
#  2 1 "Veteran" STEAM_1:1:41813649  2:05:07 64 0 active 30000 203.0.113.4:27005
# 4 "Coach" BOT active
# 5 "Ellis" BOT active
#  6 5 "New comer" STEAM_1:0:21133858 01:05 80 0 active 30000 203.0.113.8:27005
#end
"""

# CS:GO (slot column, no address, bots with a rate, names with quotes and backslashes).
CSGO = r"""hostname: Valve CS:GO EU West Server (srcds112-fra2.271.194)
version : 1.38.2.2 secure
os      :  Linux
type    :  official dedicated
map     : de_dust2
players : 3 humans, 1 bots (16/0 max) (not hibernating)

# userid name uniqueid connected ping loss state rate
# 93 2 "BonBonn" STEAM_0:1:82178006 00:21 931 83 spawning 196608
# 756 13 "\\\" STEAM_1:0:193668563 41:34 142 0 active 786432
# 94 4 "say "hi" ok" STEAM_0:0:30528856 00:20 71 80 active 196608
#103 "Jeff" BOT active 64
#end
"""

# TF2 (no slot column, [U:1:N] ids, padded columns).
TF2 = """hostname: tf2 box
map     : cp_badlands at: 0 x, 0 y, 0 z
players : 2 humans, 1 bots (24 max)
# userid name                uniqueid            connected ping loss state
#     29 "Bob"               [U:1:99999999]      01:24       67    0 active
#    158 "Jones"             [U:1:9999999999]     2:21:27    78    0 active
#      3 "Nobody"            BOT                                     active
"""


def test_l4d2_status_players_and_bots():
    report = _srcds_status.parse_status(L4D2)
    assert (report.hostname, report.map) == ("left4me demo coop", "c1m1_hotel")
    assert (report.humans, report.bots, report.max_players) == (2, 2, 8)
    assert report.problems == []
    veteran, coach, ellis, newcomer = report.players
    assert veteran == _srcds_status.StatusPlayer(
        userid=2, slot=1, name="Veteran", bot=False, steam_id="STEAM_1:1:41813649",
        connected="2:05:07", connected_seconds=2 * 3600 + 5 * 60 + 7, ping=64, loss=0,
        state="active", rate=30000, address="203.0.113.4:27005")
    assert (coach.name, coach.bot, coach.userid, coach.steam_id, coach.ping) == (
        "Coach", True, 4, None, None)
    assert ellis.bot
    assert (newcomer.name, newcomer.connected_seconds, newcomer.slot) == ("New comer", 65, 5)


def test_csgo_names_with_quotes_and_bots_with_a_rate():
    report = _srcds_status.parse_status(CSGO)
    assert report.problems == []
    assert [p.name for p in report.players] == ["BonBonn", "\\\\\\", 'say "hi" ok', "Jeff"]
    assert report.players[0].state == "spawning" and report.players[0].address is None
    assert report.players[3].bot and report.players[3].state == "active"
    assert (report.map, report.max_players) == ("de_dust2", 16)


def test_tf2_rows_without_a_slot_column():
    report = _srcds_status.parse_status(TF2)
    assert report.problems == []
    bob, jones, nobody = report.players
    assert (bob.userid, bob.slot, bob.steam_id, bob.connected_seconds) == (
        29, None, "[U:1:99999999]", 84)
    assert jones.connected_seconds == 2 * 3600 + 21 * 60 + 27
    assert nobody.bot and nobody.name == "Nobody"
    assert report.map == "cp_badlands"


@pytest.mark.parametrize("text, seconds", [
    ("00:00", 0), ("01:05", 65), ("59:59", 3599), (" 1:00:00", 3600), ("12:34:56", 45296),
    ("123:00:01", 442801),
])
def test_durations(text, seconds):
    assert _srcds_status.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["1:60", "5", "aa:bb", "1:2:3:4", "01:5", "1:75:00", ""])
def test_malformed_durations(text):
    with pytest.raises(ValueError):
        _srcds_status.parse_duration(text)


def test_a_malformed_row_is_reported_and_the_others_still_read():
    text = L4D2.replace("01:05 80", "1:5x 80").replace(
        "# 5 \"Ellis\" BOT active", "# garbage row without quotes")
    report = _srcds_status.parse_status(text + "#  9 3 \"Short\" STEAM_1:0:1 00:10\n")
    assert [p.name for p in report.players] == ["Veteran", "Coach"]
    assert len(report.problems) == 3
    assert report.problems[0].startswith("line 11: expected `# userid")
    assert "line 12: '1:5x' is not a duration" in report.problems[1]
    assert "line 14: a player row needs" in report.problems[2]


def test_a_flood_of_bad_rows_is_bounded():
    text = "\n".join(f"# {i} \"p{i}\" STEAM_1:0:{i} xx:yy 1 0 active" for i in range(500))
    report = _srcds_status.parse_status(text)
    assert report.players == []
    assert len(report.problems) == _srcds_status.MAX_PROBLEMS


def test_a_hibernating_server_has_no_players():
    text = L4D2.split("# userid", maxsplit=1)[0].replace("2 humans, 2 bots", "0 humans, 0 bots")
    report = _srcds_status.parse_status(text + "# userid name uniqueid connected\n#end\n")
    assert report.players == [] and report.problems == [] and report.humans == 0


def test_status_of_the_simulated_srcds_with_an_hour_long_player(start_srcds, standin_harness,
                                                                tmp_path):
    root = standin_harness.make_game_root(tmp_path, 'rcon_password "pw"\n')
    server = start_srcds(root, "+maxplayers", "8")
    _rcon.run_command(server.port, "pw", "sim_addplayer Veteran 64 7507", timeout=10)
    _rcon.run_command(server.port, "pw", "sim_addplayer Newcomer 80 65", timeout=10)
    output, _seconds = _rcon.run_command(server.port, "pw", "status", timeout=10)
    report = _srcds_status.parse_status(output)
    assert report.problems == []
    humans = [p for p in report.players if not p.bot]
    assert [(p.name, p.ping, p.connected_seconds // 60) for p in humans] == [
        ("Veteran", 64, 125), ("Newcomer", 80, 1)]
    assert humans[0].connected.strip().count(":") == 2  # H:MM:SS after an hour
    assert len([p for p in report.players if p.bot]) == 2  # the survivor team is four
    assert report.humans == 2 and report.max_players == 8
