"""The simulated srcds, driven with python-a2s, the `rcon` client and raw sockets."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import struct
import time
from pathlib import Path

import a2s
import pytest
from rcon.exceptions import EmptyResponse, WrongPassword
from rcon.source import Client
from standin_harness import LOOPBACK, free_port, make_game_root

from standins.srcds import cpu, net
from standins.vpk import VPK_HEADER

SERVER_CFG = """// overlay-provided server.cfg
hostname "Overlay Host" // trailing comment
rcon_password "s3cret"; sv_tags "coop,left4me"
exec nested/extra
"""
EXTRA_CFG = 'sv_password "letmein"\nmaxplayers 12\nsm_custom_cvar "plugin value"\n'


@pytest.fixture
def game_root(tmp_path):
    root = make_game_root(tmp_path, SERVER_CFG)
    nested = root / "left4dead2" / "cfg" / "nested"
    nested.mkdir()
    (nested / "extra.cfg").write_text(EXTRA_CFG)
    return root


# srcds sends long output as packets of at most 4095 bytes of text, so python `rcon`'s default
# fragment threshold (4096) never triggers its reassembly: with threshold 1 it always sends the
# empty-packet terminator and gathers every packet of the response.
ALL_FRAGMENTS = 1
MAX_RESPONSE_TEXT = 4095

# L4D2 `status` rows (real captures): humans carry the slot after the userid and the address
# last; bots print only userid, name, `BOT` and state. Userids print as `%2i`.
HUMAN_ROW = re.compile(
    r'^# (?P<userid>[ \d]\d|\d{3,}) (?P<slot>\d+) "(?P<name>.+)" (?P<steamid>STEAM_1:[01]:\d+) '
    r"(?P<connected>[ \d]\d:\d\d:\d\d|\d\d:\d\d) (?P<ping>\d+) (?P<loss>\d+) active "
    r"(?P<rate>\d+) (?P<adr>\d+\.\d+\.\d+\.\d+:\d+)$"
)
BOT_ROW = re.compile(r'^#(?P<userid>[ \d]\d|\d{3,}) "(?P<name>[^"]+)" BOT active$')


def rcon(server, *command: str, password: str = "s3cret") -> str:
    with Client(LOOPBACK, server.port, passwd=password, timeout=5) as client:
        return client.run(*command)


def status_rows(status: str) -> tuple[list[re.Match], list[re.Match]]:
    """Human and bot rows of a `status`; fails on any row of another shape."""
    lines = status.splitlines()
    header = lines.index("# userid name uniqueid connected ping loss state rate adr")
    assert lines[-1] == "#end", status
    humans, bots = [], []
    for line in lines[header + 1 : -1]:
        human, bot = HUMAN_ROW.match(line), BOT_ROW.match(line)
        assert human or bot, f"not an L4D2 status row: {line!r}"
        (humans if human else bots).append(human or bot)
    return humans, bots


def test_a2s_info_reflects_cfg_files_and_command_line(start_srcds, game_root):
    server = start_srcds(game_root, "+map", "c2m1_highway", "-tickrate", "60", "-usercon")
    info = a2s.info(server.address, timeout=2)
    assert (info.protocol, info.server_name, info.map_name) == (17, "Overlay Host", "c2m1_highway")
    assert (info.folder, info.game, info.app_id) == ("left4dead2", "Left 4 Dead 2", 550)
    assert (info.server_type, info.platform) == ("d", "l")
    assert info.password_protected and info.vac_enabled
    assert (info.player_count, info.max_players, info.bot_count) == (0, 12, 0)
    assert (info.port, info.keywords, info.game_id) == (server.port, "coop,left4me", 550)
    assert info.steam_id and info.version


def test_a2s_info_demands_a_challenge_first(start_srcds, game_root):
    server = start_srcds(game_root)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        query = b"\xff\xff\xff\xffTSource Engine Query\x00"
        sock.sendto(query, server.address)
        reply = sock.recv(1400)
        assert reply[:5] == b"\xff\xff\xff\xff\x41" and len(reply) == 9
        sock.sendto(query + reply[5:9], server.address)
        assert sock.recv(1400)[4] == 0x49


def test_a2s_rules_show_cvars_but_hide_secrets(start_srcds, game_root):
    rules = a2s.rules(start_srcds(game_root).address, timeout=2)
    assert rules["sv_tags"] == "coop,left4me"
    assert rules["sm_custom_cvar"] == "plugin value"
    assert "rcon_password" not in rules and "sv_password" not in rules


def test_server_cfg_runs_at_map_load_after_command_line(start_srcds, game_root):
    server = start_srcds(game_root, "+hostname", "From Cmdline", "+sv_tags", "cmdline")
    info = a2s.info(server.address, timeout=2)
    # srcds order: +commands at start-up, then server.cfg on map load overrides them.
    assert info.server_name == "Overlay Host"
    (game_root / "left4dead2" / "cfg" / "server.cfg").write_text('rcon_password "s3cret"\n')
    other = start_srcds(game_root, "+hostname", "From Cmdline")
    assert a2s.info(other.address, timeout=2).server_name == "From Cmdline"


def test_servercfgfile_names_the_cfg_run_at_every_map_load(start_srcds, game_root):
    """srcds runs the cfg ``servercfgfile`` names at map load (server.cfg by default): a
    cfg run after server.cfg there has the last word, at every map load."""
    cfg = game_root / "left4dead2" / "cfg"
    (cfg / "server.cfg").write_text('hostname "Overlay Host"\nrcon_password "tenant"\n')
    (cfg / "last.cfg").write_text('rcon_password "own"\n')
    (cfg / "mapload.cfg").write_text("exec server.cfg\nexec last.cfg\n")
    (cfg / "start.cfg").write_text('servercfgfile "mapload.cfg"\nrcon_password "own"\n')
    server = start_srcds(game_root, "+exec", "start.cfg")
    server.process.wait_for_line("Executing dedicated server config file mapload.cfg")
    assert a2s.info(server.address, timeout=2).server_name == "Overlay Host"
    rcon(server, "changelevel c1m2_streets", password="own")
    server.process.wait_for_line("Map c1m2_streets loaded")
    assert "hostname: Overlay Host" in rcon(server, "status", password="own")


def test_addons_are_listed_and_dangling_links_reported(start_srcds, game_root, tmp_path):
    addons = game_root / "left4dead2" / "addons"
    real = tmp_path / "store" / "123.vpk"
    real.parent.mkdir()
    real.write_bytes(VPK_HEADER + b"data")
    (addons / "linked.vpk").symlink_to(real)
    (addons / "gone.vpk").symlink_to(tmp_path / "store" / "missing.vpk")
    (addons / "junk.vpk").write_bytes(b"not a vpk")
    server = start_srcds(game_root)
    server.process.wait_for_line("Loaded add-on: addons/linked.vpk")
    server.process.wait_for_line("Missing add-on: addons/gone.vpk")
    listing = rcon(server, "sim_addons")
    assert "loaded linked.vpk" in listing and "missing gone.vpk" in listing
    assert "invalid junk.vpk" in listing


def test_rcon_status_users_and_player_tracking(start_srcds, game_root):
    server = start_srcds(game_root)
    assert "Added" in rcon(server, "sim_addplayer", "Ellis", "42")
    rcon(server, "sim_addplayer", "Rochelle")
    server.process.wait_for_line('Client "Ellis" connected (')
    status = rcon(server, "status")
    lines = status.splitlines()
    assert lines[0] == "hostname: Overlay Host"
    assert lines[2].startswith(f"udp/ip  : {LOOPBACK}:{server.port}")
    assert "players : 2 humans, 2 bots (12 max) (not hibernating) (unreserved)" in status
    humans, _ = status_rows(status)
    ellis = next(row for row in humans if row["name"] == "Ellis")
    assert ellis.group(0).startswith('#  2 1 "Ellis" STEAM_1:') and " 42 0 active " in ellis[0]
    assert '0:2:"Ellis"' in rcon(server, "users")
    names = sorted(p.name for p in a2s.players(server.address, timeout=2))
    assert names == ["Ellis", "Rochelle"]
    assert a2s.info(server.address, timeout=2).player_count == 2


def test_rcon_kick_and_remove_players(start_srcds, game_root):
    server = start_srcds(game_root)
    rcon(server, "sim_addplayer", "Nick")
    rcon(server, "sim_addplayer", "Coach")
    rcon(server, "kick", "#2")
    server.process.wait_for_line("Dropped Nick from server (Kicked from server)")
    rcon(server, "sim_removeplayer", "Coach")
    server.process.wait_for_line("Dropped Coach from server (Disconnect by user.)")
    assert a2s.players(server.address, timeout=2) == []
    assert "no such player" in rcon(server, "kick", "Nobody")


def test_rcon_cvars_and_unknown_commands(start_srcds, game_root):
    server = start_srcds(game_root)
    assert rcon(server, "hostname").strip() == '"hostname" = "Overlay Host"'
    rcon(server, "hostname", "Renamed")
    assert a2s.info(server.address, timeout=2).server_name == "Renamed"
    assert rcon(server, "bogus_command").strip() == 'Unknown command "bogus_command"'
    assert "couldn't exec" in rcon(server, "exec", "nope.cfg")
    (game_root / "left4dead2" / "cfg" / "late.cfg").write_text('hostname "Late"')
    rcon(server, "exec", "late")
    assert a2s.info(server.address, timeout=2).server_name == "Late"
    rcon(server, "say", "hello survivors")
    server.process.wait_for_line("Console: hello survivors")


def test_rcon_changelevel_checks_maps(start_srcds, game_root):
    (game_root / "left4dead2" / "maps" / "custom_map.bsp").write_bytes(b"VBSP")
    server = start_srcds(game_root)
    rcon(server, "changelevel", "c5m1_waterfront")
    assert a2s.info(server.address, timeout=2).map_name == "c5m1_waterfront"
    rcon(server, "map", "custom_map")
    assert a2s.info(server.address, timeout=2).map_name == "custom_map"
    assert "not found" in rcon(server, "changelevel", "no_such_map")
    assert a2s.info(server.address, timeout=2).map_name == "custom_map"


def test_rcon_sourcemod_commands_need_sourcemod(start_srcds, game_root):
    server = start_srcds(game_root)
    assert rcon(server, "sm", "plugins", "list").strip() == 'Unknown command "sm"'
    sourcemod = game_root / "left4dead2" / "addons" / "sourcemod"
    (sourcemod / "plugins").mkdir(parents=True)
    (sourcemod / "extensions").mkdir()
    (sourcemod / "plugins" / "l4d2_stats.smx").write_bytes(b"FFSP")
    (sourcemod / "extensions" / "left4downtown.ext.so").write_bytes(b"\x7fELF")
    plugins = rcon(server, "sm", "plugins", "list")
    assert "[SM] Listing 1 plugins:" in plugins and '"l4d2_stats"' in plugins
    assert "[01] left4downtown" in rcon(server, "sm", "exts", "list")


def test_rcon_bad_password_and_empty_password(start_srcds, game_root):
    server = start_srcds(game_root)
    with pytest.raises(WrongPassword):
        rcon(server, "status", password="wrong")
    server.process.wait_for_line("Bad Password")
    (game_root / "left4dead2" / "cfg" / "server.cfg").write_text('hostname "No Rcon"\n')
    unprotected = start_srcds(game_root)
    with pytest.raises(WrongPassword):
        rcon(unprotected, "status", password="")


def _bad_logins(server) -> int:
    return sum(1 for line in server.process.lines if line.endswith(": Bad Password"))


def _raw_a2s_info(server) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(b"\xff\xff\xff\xffTSource Engine Query\x00", server.address)
        return sock.recv(1400)


def test_rcon_bans_at_the_eleventh_failure_not_before(start_srcds, game_root):
    """engine/sv_rcon.cpp HandleFailedRconAuth: banned when the count is above
    sv_rcon_maxfailures (10). Spaced past the 5-in-30 s window so only the count bites."""
    cfg = game_root / "left4dead2" / "cfg" / "server.cfg"
    cfg.write_text(SERVER_CFG + "sv_rcon_minfailuretime 1\n")
    server = start_srcds(game_root)
    for _ in range(10):
        with pytest.raises(WrongPassword):
            rcon(server, "status", password="guess")
        time.sleep(0.25)  # at most 4 failures in any 1 s window: the rate rule stays quiet
    assert rcon(server, "echo", "still", "answered").strip() == "still answered"
    assert not any("Banning" in line for line in server.process.lines)
    # The 11th: no AUTH_RESPONSE, the connection is closed, and the address is filtered.
    with pytest.raises((EmptyResponse, OSError, WrongPassword, struct.error)):
        rcon(server, "status", password="guess")
    server.process.wait_for_line(f"Banning {LOOPBACK} for rcon hacking attempts")
    assert _bad_logins(server) == 11


def test_rcon_bans_the_sixth_failure_within_thirty_seconds(start_srcds, game_root):
    server = start_srcds(game_root)
    for _ in range(5):
        with pytest.raises(WrongPassword):
            rcon(server, "status", password="guess")
    assert not any("Banning" in line for line in server.process.lines)
    with pytest.raises((EmptyResponse, OSError, WrongPassword, struct.error)):
        rcon(server, "status", password="guess")
    server.process.wait_for_line(f"Banning {LOOPBACK} for rcon hacking attempts")


def test_a_banned_address_gets_no_rcon_and_banned_by_server_on_a2s(start_srcds, game_root):
    """The ban is the engine's `addip sv_rcon_banpenalty IP`: the IP filter drops the address's
    TCP connections and answers each of its UDP packets, A2S too, with "Banned by server"."""
    cfg = game_root / "left4dead2" / "cfg" / "server.cfg"
    cfg.write_text(SERVER_CFG + "sv_rcon_maxfailures 3\nsv_rcon_banpenalty 5\n")
    server = start_srcds(game_root)
    # maxfailures 3 < minfailures 5: srcds swaps them, so the 4th failure within 30 s bans.
    for _ in range(3):
        with pytest.raises(WrongPassword):
            rcon(server, "status", password="guess")
    with pytest.raises((EmptyResponse, OSError, WrongPassword, struct.error)):
        rcon(server, "status", password="guess")
    server.process.wait_for_line(f"Banning {LOOPBACK} for rcon hacking attempts")
    with pytest.raises((EmptyResponse, OSError, WrongPassword, struct.error)):
        rcon(server, "status")  # even the right password is refused while banned
    assert _raw_a2s_info(server) == b"\xff\xff\xff\xfflBanned by server\n\x00"


def test_writeid_and_writeip_write_the_ban_files_or_say_they_could_not(start_srcds, game_root):
    server = start_srcds(game_root)
    rcon(server, "sim_addplayer", "Griefer", "60", "10")
    rcon(server, "banid", "0", "Griefer")
    rcon(server, "addip", "0", "203.0.113.9")
    assert rcon(server, "writeid").strip() == "Writing cfg/banned_user.cfg."
    assert rcon(server, "writeip").strip() == "Writing cfg/banned_ip.cfg."
    cfg = game_root / "left4dead2" / "cfg"
    assert (cfg / "banned_ip.cfg").read_bytes() == b"addip 0 203.0.113.9\r\n"
    assert (cfg / "banned_user.cfg").read_bytes().startswith(b"banid 0 STEAM_1:")
    (cfg / "banned_user.cfg").unlink()
    (cfg / "banned_user.cfg").mkdir()  # any open failure (EACCES on a real host) reads so
    assert rcon(server, "writeid").splitlines() == [
        "Writing cfg/banned_user.cfg.", "Couldn't open cfg/banned_user.cfg"]


def test_status_shows_players_whose_steam_id_is_pending(start_srcds, game_root):
    server = start_srcds(game_root)
    rcon(server, "sim_addplayer", "Joiner", "80", "5", "pending")
    rcon(server, "sim_addplayer", "Joiner", "90", "3", "pending")
    rows = [line for line in rcon(server, "status").splitlines() if "STEAM_ID_PENDING" in line]
    assert len(rows) == 2 and rows[0].split()[1] != rows[1].split()[1]  # two userids


def test_sim_burst_prints_every_line(start_srcds, game_root):
    server = start_srcds(game_root)
    assert rcon(server, "sim_burst", "500").strip() == "sim_burst: printed 500 lines"
    server.process.wait_for_line("sim_burst line 500/500")
    assert sum(1 for line in server.process.lines if line.startswith("sim_burst line ")) == 500


def test_status_rows_have_the_l4d2_shape_with_survivor_bots(start_srcds, game_root):
    server = start_srcds(game_root)
    idle = rcon(server, "status")
    # An empty dedicated server hibernates and has no bots at all.
    assert "players : 0 humans, 0 bots (12 max) (hibernating) (unreserved)" in idle
    assert status_rows(idle) == ([], [])
    assert "secure  (unknown)" in idle.splitlines()[1]
    rcon(server, "sim_addplayer", "Veteran", "64", str(2 * 3600 + 5 * 60 + 7))
    rcon(server, "sim_addplayer", "Newcomer", "80", "65")
    status = rcon(server, "status")
    assert "players : 2 humans, 2 bots (12 max) (not hibernating)" in status
    humans, bots = status_rows(status)
    assert [(h["name"], h["connected"]) for h in humans] == [
        ("Veteran", " 2:05:07"),  # COM_FormatSeconds pads the hours to two columns
        ("Newcomer", "01:05"),
    ]
    # Two humans play two of the L4D2 cast (c1m1); bots play the other two.
    assert {b["name"] for b in bots} < {"Nick", "Rochelle", "Coach", "Ellis"} and len(bots) == 2
    userids = [int(row["userid"]) for row in humans + bots]
    slots = [int(h["slot"]) for h in humans]
    assert len(set(userids)) == 4 and len(set(slots)) == 2 and min(slots) == 1
    users = rcon(server, "users")
    assert users.splitlines()[-1] == "4 users"  # `users` lists bots too
    assert all(f':{b["userid"].strip()}:"{b["name"]}"' in users for b in bots)


def test_survivor_bots_follow_humans_and_the_campaign_cast(start_srcds, game_root):
    server = start_srcds(game_root)
    for name in ("P1", "P2", "P3", "P4"):
        rcon(server, "sim_addplayer", name)
    assert status_rows(rcon(server, "status"))[1] == []  # four humans: no survivor bots
    rcon(server, "sim_removeplayer", "P2")
    _, bots = status_rows(rcon(server, "status"))
    assert len(bots) == 1  # the character P2 played is a bot again, with a new userid
    assert int(bots[0]["userid"]) > 5
    rcon(server, "kick", bots[0]["name"])
    assert status_rows(rcon(server, "status"))[1] == []  # a kicked bot stays gone for the map
    rcon(server, "changelevel", "c8m1_apartment")  # No Mercy: the L4D1 cast
    rcon(server, "sim_removeplayer", "P3")
    _, bots = status_rows(rcon(server, "status"))
    assert len(bots) == 2 and {b["name"] for b in bots} < {"Bill", "Zoey", "Louis", "Francis"}
    for name in ("P1", "P4"):
        rcon(server, "sim_removeplayer", name)
    assert "0 humans, 0 bots" in rcon(server, "status")  # hibernating again: bots dropped


def _seed_players(server, count: int) -> None:
    with Client(LOOPBACK, server.port, passwd="s3cret", timeout=5) as client:
        for index in range(count):
            client.run("sim_addplayer", f"Survivor{index:03d}")


def test_rcon_client_reassembles_long_output(start_srcds, game_root):
    server = start_srcds(game_root)
    _seed_players(server, 120)
    with Client(LOOPBACK, server.port, passwd="s3cret", timeout=5) as client:
        first_packet_only = client.run("status")
    with Client(
        LOOPBACK, server.port, passwd="s3cret", timeout=5, frag_threshold=ALL_FRAGMENTS
    ) as client:
        status = client.run("status")
        assert client.run("hostname").strip() == '"hostname" = "Overlay Host"'
    # With its default threshold the client keeps only srcds's first (<= 4095-byte) packet.
    assert len(first_packet_only.encode()) <= MAX_RESPONSE_TEXT
    assert status.startswith(first_packet_only) and len(status.encode()) > 2 * 4096
    humans, bots = status_rows(status)
    assert len(humans) == 120 and bots == []
    # Rows come in slot order; joiners fill the slots the bots they replaced left free.
    assert sorted(h["name"] for h in humans) == [f"Survivor{i:03d}" for i in range(120)]


def _packet(request_id: int, kind: int, body: bytes = b"") -> bytes:
    payload = struct.pack("<ii", request_id, kind) + body + b"\x00\x00"
    return struct.pack("<i", len(payload)) + payload


def _read_packet(sock: socket.socket) -> tuple[int, int, bytes]:
    size = struct.unpack("<i", sock.recv(4, socket.MSG_WAITALL))[0]
    payload = sock.recv(size, socket.MSG_WAITALL)
    request_id, kind = struct.unpack("<ii", payload[:8])
    return request_id, kind, payload[8:-2]


def _response_bodies(server, command: str) -> list[bytes]:
    """Every RESPONSE_VALUE body srcds sends for `command`, read off a raw socket: the
    command, then an empty RESPONSE_VALUE whose mirror marks the end."""
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(_packet(1, 3, b"s3cret"))
        assert _read_packet(sock)[:2] == (1, 0) and _read_packet(sock)[:2] == (1, 2)
        sock.sendall(_packet(2, 2, command.encode()) + _packet(3, 0))
        bodies = []
        while (packet := _read_packet(sock))[0] == 2:
            assert packet[1] == 0
            bodies.append(packet[2])  # the text, without string1's and string2's NULs
        assert packet == (3, 0, b"")  # the mirrored empty packet ends the response
        assert _read_packet(sock) == (3, 0, b"\x00\x01\x00\x00")
    return bodies


def test_rcon_long_output_is_cut_into_4095_byte_packets_between_prints(start_srcds, game_root):
    server = start_srcds(game_root)
    _seed_players(server, 120)
    bodies = _response_bodies(server, "status")
    status = b"".join(bodies).decode()
    assert len(bodies) >= 3 and all(len(body) <= MAX_RESPONSE_TEXT for body in bodies)
    humans, _ = status_rows(status)
    assert len(humans) == 120
    for body, successor in zip(bodies, bodies[1:], strict=False):
        # A packet goes out only when the next print would not fit: each is nearly full...
        assert len(body) > MAX_RESPONSE_TEXT - 120
        # ...and is cut where one print call ends: after a newline, or inside a human row
        # between its columns, its address and its newline (three prints in srcds).
        tail = body.decode().rsplit("\n", 1)[-1]
        assert tail == "" or HUMAN_ROW.match(tail + successor.decode().split("\n", 1)[0])
        assert tail == "" or tail.endswith("active 30000") or re.search(r":\d+$", tail)


def test_rcon_output_of_whole_lines_is_cut_at_line_ends(start_srcds, game_root):
    plugins = game_root / "left4dead2" / "addons" / "sourcemod" / "plugins"
    plugins.mkdir(parents=True)
    (plugins.parent / "extensions").mkdir()
    for index in range(150):
        (plugins / f"l4d2_plugin_with_a_rather_long_name_{index:03d}.smx").write_bytes(b"FFSP")
    server = start_srcds(game_root)
    bodies = _response_bodies(server, "sm plugins list")
    assert len(bodies) >= 2 and all(len(body) <= MAX_RESPONSE_TEXT for body in bodies)
    assert all(body.endswith(b"\n") for body in bodies)
    listing = b"".join(bodies).decode().splitlines()
    assert listing[0] == "[SM] Listing 150 plugins:" and len(listing) == 151
    assert listing[-1].endswith('"l4d2_plugin_with_a_rather_long_name_149" (1.0) by unknown')


def test_rcon_wire_format_terminator_trick(start_srcds, game_root):
    server = start_srcds(game_root)
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(_packet(7, 3, b"s3cret"))
        assert _read_packet(sock) == (7, 0, b"")  # empty RESPONSE_VALUE first, like srcds
        assert _read_packet(sock) == (7, 2, b"")  # then AUTH_RESPONSE with our id
        sock.sendall(_packet(8, 2, b"echo hi") + _packet(9, 0))
        assert _read_packet(sock) == (8, 0, b"hi\n")
        assert _read_packet(sock) == (9, 0, b"")  # mirrored empty packet
        assert _read_packet(sock) == (9, 0, b"\x00\x01\x00\x00")  # srcds's junk packet
        sock.sendall(_packet(10, 3, b"wrong"))
        assert _read_packet(sock)[1] == 0
        assert _read_packet(sock)[:2] == (-1, 2)


def test_rcon_quit_exits_zero(start_srcds, game_root):
    server = start_srcds(game_root)
    rcon(server, "quit")
    assert server.process.wait() == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_cleanly(start_srcds, game_root, sig):
    server = start_srcds(game_root)
    assert server.process.stop(sig) == 0
    server.process.wait_for_line("Server shutting down.")


def test_startup_console_lines(start_srcds, game_root):
    server = start_srcds(game_root)
    for line in (
        "---- Host_NewGame ----",
        "Executing dedicated server config file server.cfg",
        "Connection to Steam servers successful.",
        "VAC secure mode is activated.",
    ):
        server.process.wait_for_line(line)


def test_crash_after_seconds(start_srcds, game_root):
    server = start_srcds(game_root, "-sim_crash_after", "0.5")
    assert server.process.wait() == -signal.SIGSEGV


def test_crash_at_start(start_srcds, game_root):
    server = start_srcds(game_root, env={"SRCDS_SIM_CRASH_AT_START": "1"}, ready=False)
    assert server.process.wait() == -signal.SIGSEGV
    assert "Connection to Steam" not in server.process.output


def test_fail_to_bind_switch(start_srcds, game_root):
    server = start_srcds(game_root, env={"SRCDS_SIM_BIND_FAIL": "1"}, ready=False)
    assert server.process.wait() == 1
    assert "Couldn't allocate any server IP port" in server.process.output


def test_port_really_in_use_with_strictportbind(start_srcds, game_root):
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as blocker:
        blocker.bind((LOOPBACK, port))
        server = start_srcds(game_root, "-strictportbind", port=port, ready=False)
        assert server.process.wait() == 1
    assert "-strictportbind" in server.process.output


def test_hang_at_start_never_answers_but_stops(start_srcds, game_root):
    server = start_srcds(game_root, "-sim_hang", ready=False)
    server.process.wait_for_line("Waiting for Steam client")
    with pytest.raises(TimeoutError):
        a2s.info(server.address, timeout=0.5)
    assert server.process.stop() == 0


def _silent_on_a2s(server, timeout: float = 0.5) -> bool:
    try:
        a2s.info(server.address, timeout=timeout)
    except TimeoutError:
        return True
    return False


def test_rcon_sim_hang_leaves_the_process_alive_and_silent(start_srcds, game_root):
    """A plugin's endless loop: the process lives and holds its ports, but neither A2S
    nor RCON answers again (the command that hung it gets no reply); SIGTERM ends it."""
    server = start_srcds(game_root)
    with Client(LOOPBACK, server.port, passwd="s3cret", timeout=1) as client, \
            pytest.raises(TimeoutError):
        client.run("sim_hang")
    assert _silent_on_a2s(server)
    with pytest.raises(TimeoutError), Client(LOOPBACK, server.port, passwd="s3cret",
                                             timeout=1) as client:
        client.run("status")
    assert server.process.popen.poll() is None
    time.sleep(1)
    assert _silent_on_a2s(server)  # for good, not for a while
    assert server.process.stop() == 0


def test_hang_after_seconds(start_srcds, game_root):
    server = start_srcds(game_root, env={"SRCDS_SIM_HANG_AFTER": "1"})
    assert a2s.info(server.address, timeout=2).map_name == "c1m1_hotel"
    time.sleep(1.2)
    assert _silent_on_a2s(server)
    assert server.process.popen.poll() is None


def test_slow_map_load_is_silent_then_answers_with_the_new_map(start_srcds, game_root):
    """changelevel replies at once; then A2S and RCON are silent for the load's seconds,
    and the queries asked meanwhile are answered after it, with the new map."""
    server = start_srcds(game_root)
    assert "= \"2\"" in rcon(server, "sim_map_load_seconds", "2")
    # The end-of-answer marker sent right behind it is read in the same frame: mirrored.
    assert _response_bodies(server, "changelevel c2m1_highway") == [b""]
    started = time.monotonic()
    assert _silent_on_a2s(server)
    with Client(LOOPBACK, server.port, passwd="s3cret", timeout=5) as client:
        assert "c2m1_highway" in client.run("status")  # waits out the load
    assert 1.5 < time.monotonic() - started < 4
    assert a2s.info(server.address, timeout=1).map_name == "c2m1_highway"
    server.process.wait_for_line("Map c2m1_highway loaded")


def test_slow_map_load_at_start(start_srcds, game_root):
    server = start_srcds(game_root, "-sim_map_load_seconds", "1.5", ready=False)
    server.process.wait_for_line("---- Host_NewGame ----")
    assert "Map c1m1_hotel loaded" not in server.process.output
    server.process.wait_for_line("Map c1m1_hotel loaded")
    assert a2s.info(server.address, timeout=2).map_name == "c1m1_hotel"


def test_sim_map_load_seconds_refuses_a_negative_value(start_srcds, game_root):
    server = start_srcds(game_root)
    assert "0 or more" in rcon(server, "sim_map_load_seconds", "-1")
    assert "= \"0\"" in rcon(server, "sim_map_load_seconds")


def test_seeded_player_schedule(start_srcds, game_root):
    schedule = "join=0.1,stay=0.3-0.6,max=3"
    server = start_srcds(game_root, "--seed", "7", "--player-schedule", schedule)
    joined = server.process.wait_for_line('" connected (')
    server.process.wait_for_line("(Disconnect by user.)")
    deadline = time.monotonic() + 5
    while not a2s.players(server.address, timeout=1) and time.monotonic() < deadline:
        time.sleep(0.05)  # polling an observable state, bounded by the deadline
    again = start_srcds(game_root, env={"SRCDS_SIM_SEED": "7", "SRCDS_SIM_PLAYERS": schedule})
    assert again.process.wait_for_line('" connected (') == joined  # same seed, same player


# --- the sockets srcds opens, and its CPU speed (standins/srcds/net.py, cpu.py) ------------


def udp_ports_bound(pid: int) -> set[int]:
    """The UDP ports a process holds, from /proc/net/udp and its fds (like `ss -ulpn`)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[9] in inodes:
            ports.add(int(fields[1].split(":")[1], 16))
    return ports


def test_binds_server_client_and_sourcetv_ports(start_srcds, game_root):
    port, client, tv = free_port(), free_port(), free_port()
    server = start_srcds(game_root, "-sim_default_ports", "+clientport", str(client),
                         "+tv_port", str(tv), port=port)
    assert udp_ports_bound(server.process.popen.pid) == {port, client, tv}
    assert f"ports {port} SV / {client} CL" in server.process.output


def test_nohltv_opens_no_sourcetv_socket(start_srcds, game_root):
    port, client = free_port(), free_port()
    server = start_srcds(game_root, "+clientport", str(client), "-nohltv", port=port)
    assert udp_ports_bound(server.process.popen.pid) == {port, client}


def test_dash_clientport_is_not_srcds_syntax(start_srcds, game_root):
    """Only the cvar sets it (LinuxGSM passes +clientport): -clientport leaves 27005."""
    server = start_srcds(game_root, "-sim_default_ports", "-nohltv", "-clientport", "1")
    assert "SV / 1 CL" not in server.process.output
    assert " CL" in server.process.output


def test_taken_port_moves_to_the_next_one(start_srcds, game_root):
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as blocker:
        blocker.bind((LOOPBACK, port))
        server = start_srcds(game_root, port=port, ready=False)
        server.process.wait_for_line("Network: IP")
    assert f"WARNING: Port {port} was unavailable - bound to port" in server.process.output
    assert server.process.popen.poll() is None


def test_strictportbind_quits_on_a_taken_port(start_srcds, game_root):
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as blocker:
        blocker.bind((LOOPBACK, port))
        server = start_srcds(game_root, "-strictportbind", port=port, ready=False)
        assert server.process.wait() == 1
    assert f'Port {port} was unavailable - quitting due to "-strictportbind"' in (
        server.process.output)


def test_refused_server_bind_is_fatal_not_retried(start_srcds, game_root):
    """EADDRNOTAVAIL (as EPERM from SocketBindDeny=): no next port, the server quits."""
    server = start_srcds(game_root, "+ip", "192.0.2.1", ready=False)
    assert server.process.wait() == 1
    output = server.process.output
    assert "WARNING: NNET_OpenSocket: bind: Cannot assign requested address" in output
    assert "Couldn't allocate any server IP port" in output
    assert "was unavailable" not in output


def test_client_port_falls_back_to_any_port(start_srcds, game_root):
    client = free_port()
    with contextlib.ExitStack() as stack:
        for offset in range(net.PORT_TRY_MAX):  # the port and the nine after it: all taken
            blocker = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            with contextlib.suppress(OSError):
                blocker.bind((LOOPBACK, client + offset))
        server = start_srcds(game_root, "+clientport", str(client))
    assert "UDP_OpenSocket: unable to bind socket" in server.process.output
    assert f"SV / {client} CL" not in server.process.output


def cpu_env(tmp_path: Path, *, cpuinfo: str | None, sysfs: str | None = None,
            **extra: str) -> dict[str, str]:
    """Point the stand-in's /proc/cpuinfo and cpufreq reads at files (absent: None)."""
    proc, sys_file = tmp_path / "cpuinfo", tmp_path / "cpuinfo_max_freq"
    if cpuinfo is not None:
        proc.write_text(cpuinfo)
    if sysfs is not None:
        sys_file.write_text(sysfs)
    return {"SRCDS_SIM_PROC_CPUINFO": str(proc), "SRCDS_SIM_SYSFS_CPUFREQ": str(sys_file),
            **extra}


CPUINFO = "processor\t: 0\ncpu MHz\t\t: 2995.210\nprocessor\t: 1\ncpu MHz\t\t: 2995.210\n"


def test_cpu_speed_from_the_tsc_needs_no_proc(start_srcds, game_root, tmp_path):
    server = start_srcds(game_root, env=cpu_env(tmp_path, cpuinfo=None))
    assert "CPU: 2400 MHz (tsc), 1 logical processor(s)" in server.process.output


def test_unstable_tsc_falls_back_to_proc_cpuinfo(start_srcds, game_root, tmp_path):
    env = cpu_env(tmp_path, cpuinfo=CPUINFO, SRCDS_SIM_TSC_UNSTABLE="1")
    server = start_srcds(game_root, env=env)
    assert "CPU: 2995 MHz (/proc/cpuinfo), 2 logical processor(s)" in server.process.output


def test_no_cpu_speed_without_proc_is_fatal(start_srcds, game_root, tmp_path):
    """ProcSubset=pid hides /proc/cpuinfo: where the TSC measurement does not settle,
    tier0 has nothing left and ends the server before it binds."""
    env = cpu_env(tmp_path, cpuinfo=None, SRCDS_SIM_TSC_UNSTABLE="1")
    server = start_srcds(game_root, env=env, ready=False)
    assert server.process.wait() == 1
    assert "Unable to determine CPU Frequency" in server.process.output
    assert "Network: IP" not in server.process.output


def test_cpu_mhz_environment_wins(start_srcds, game_root, tmp_path):
    env = cpu_env(tmp_path, cpuinfo=None, sysfs="3500000\n", SRCDS_SIM_TSC_UNSTABLE="1",
                  CPU_MHZ="2100")
    server = start_srcds(game_root, env=env)
    assert "CPU: 2100 MHz (CPU_MHZ)" in server.process.output


def test_cpufreq_max_is_read_before_measuring(start_srcds, game_root, tmp_path):
    env = cpu_env(tmp_path, cpuinfo=None, sysfs="3500000\n", SRCDS_SIM_TSC_UNSTABLE="1")
    server = start_srcds(game_root, env=env)
    assert "CPU: 3500 MHz (cpufreq)" in server.process.output


def test_cpuinfo_parsed_as_tier0_reads_it():
    assert cpu.mhz_from_cpuinfo(CPUINFO) == 2995
    assert cpu.mhz_from_cpuinfo("model name : x\n") == 0
    assert cpu.logical_from_cpuinfo(CPUINFO) == 2
    assert cpu.logical_from_cpuinfo(None) == 1
