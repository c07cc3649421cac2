# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Tests for module_utils/_rcon.py: packet framing, and real exchanges with the simulated
srcds (repo standins/) on loopback: multi-packet answers, wrong password, ban, timeout."""

from __future__ import annotations

import pathlib
import socket
import struct
import sys
import threading
import time

import pytest

try:
    from ansible_collections.left4me.l4d2.plugins.module_utils import (
        _a2s,
        _rcon,
        _srcds_info,
        _srcds_status,
    )
except ImportError:  # plain pytest from the repo root: make the collection importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))
    from ansible_collections.left4me.l4d2.plugins.module_utils import (
        _a2s,
        _rcon,
        _srcds_info,
        _srcds_status,
    )


def free_port() -> int:
    """A loopback TCP port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


PASSWORD = "s3cret-rcon"


def test_a_packet_is_size_id_type_body_and_two_nuls():
    packet = _rcon.encode_packet(7, _rcon.SERVERDATA_EXECCOMMAND, b"status")
    assert packet == struct.pack("<iii", 4 + 4 + 6 + 2, 7, 2) + b"status\x00\x00"


def test_the_reader_joins_packets_split_across_reads_and_splits_coalesced_ones():
    stream = (_rcon.encode_packet(2, 0, b"a" * 5000)
              + _rcon.encode_packet(3, 0) + _rcon.encode_packet(3, 0, b"\x00\x01\x00\x00"))
    reader = _rcon.PacketReader()
    packets = []
    for start in range(0, len(stream), 1000):  # TCP may cut anywhere
        packets += reader.feed(stream[start:start + 1000])
    assert [(p.request_id, len(p.body)) for p in packets] == [(2, 5000), (3, 0), (3, 2)]


@pytest.mark.parametrize("size", [0, 9, -1, 10_000_000])
def test_a_size_no_srcds_sends_is_a_protocol_error(size):
    with pytest.raises(_rcon.RconProtocolError, match="not Source RCON"):
        _rcon.PacketReader().feed(struct.pack("<i", size) + b"\x00" * 12)


@pytest.mark.parametrize("command, what", [
    ("status\nquit", "line feed"),
    ("status\r", "carriage return"),
    ("say hi\x00quit", "NUL"),
])
def test_a_command_with_a_line_break_or_nul_is_refused(command, what):
    with pytest.raises(_rcon.RconError, match=f"contains a {what}"):
        _rcon.validate_command(command)


@pytest.mark.parametrize("line, commands", [
    ("status", ["status"]),
    ("status;rcon_password x", ["status", "rcon_password x"]),
    ('say "a;b"; status ;', ['say "a;b"', "status"]),
    ('say "unclosed; quit', ['say "unclosed; quit']),
])
def test_a_line_splits_into_commands_the_way_srcds_runs_them(line, commands):
    assert _rcon.split_commands(line) == commands


@pytest.mark.parametrize("command, refused", [
    ("status;rcon_password x", "rcon_password"),
    ('"rcon_password" x', "rcon_password"),
    ('"RCON_PASSWORD"x', "rcon_password"),
    ('alias set "rcon_password x"; set', "rcon_password"),
    ("status ; quit", "quit"),
    ('"exit"', "exit"),
    ("echo a;_RESTART", "_restart"),
])
def test_a_refused_command_is_refused_in_any_part_of_the_line(command, refused):
    with pytest.raises(_rcon.RconError, match=f"^{refused} is refused"):
        _rcon.validate_command(command)


@pytest.mark.parametrize("command", [
    "status", 'say "quit; exit"', "sv_password letmein", "echo quitting", "sm_rcon_passwords"])
def test_commands_that_only_look_alike_pass(command):
    assert _rcon.validate_command(command) == command


@pytest.mark.parametrize("command", ["", "   ", None, "x" * 4001])
def test_an_empty_or_oversized_command_is_refused(command):
    with pytest.raises(_rcon.RconError):
        _rcon.validate_command(command)


@pytest.mark.parametrize("text, password", [
    ('// x\nhostname "a"\nrcon_password "first"\nrcon_password "second"\n', "second"),
    ("rcon_password plainword // comment\n", "plainword"),
    ('RCON_PASSWORD "with space"\n', "with space"),
    ('// rcon_password "commented"\nhostname x\n', None),
    ("", None),
    (None, None),
])
def test_the_password_is_the_last_one_a_cfg_sets(text, password):
    assert _rcon.read_rcon_password(text) == password


def _instance_cfg(state: pathlib.Path, name: str, text: str) -> pathlib.Path:
    cfg = pathlib.Path(_rcon.instance_cfg_path(name, str(state)))
    cfg.parent.mkdir(parents=True)
    cfg.write_text(text)
    return cfg


def test_the_password_is_the_instance_cfgs_whatever_the_merged_tree_says(tmp_path):
    """The merged tree is the tenant's: its server.cfg (a link to another instance's cfg
    here) is never read; srcds runs instance.cfg after it at every map load."""
    victim = _instance_cfg(tmp_path, "victim", 'rcon_password "VICTIM"\n')
    _instance_cfg(tmp_path, "coop1", 'rcon_password "own"\n')
    merged_cfg = tmp_path / "runtime" / "coop1" / "merged" / "left4dead2" / "cfg"
    merged_cfg.mkdir(parents=True)
    (merged_cfg / "server.cfg").symlink_to(victim)
    assert _rcon.instance_password("coop1", str(tmp_path)) == "own"
    assert _rcon.instance_password("ghost", str(tmp_path)) is None


def test_a_link_in_the_config_layer_is_refused_not_followed(tmp_path):
    victim = _instance_cfg(tmp_path, "victim", 'rcon_password "VICTIM"\n')
    cfg = pathlib.Path(_rcon.instance_cfg_path("coop1", str(tmp_path)))
    cfg.parent.mkdir(parents=True)
    cfg.symlink_to(victim)
    with pytest.raises(_rcon.RconError, match="is a symbolic link: not read"):
        _rcon.instance_password("coop1", str(tmp_path))


def test_the_instance_cfg_is_where_srcds_instance_writes_it():
    assert _rcon.instance_cfg_path("coop1", "/var/lib/left4me") == (
        "/var/lib/left4me/overlays/.instance-coop1/left4dead2/cfg/left4me/instance.cfg")


@pytest.fixture
def server(start_srcds, standin_harness, tmp_path):
    root = standin_harness.make_game_root(
        tmp_path, f'rcon_password "{PASSWORD}"\nsv_rcon_maxfailures 3\n')
    return start_srcds(root, "+maxplayers", "8")


def test_status_from_the_simulated_srcds(server):
    output, seconds = _rcon.run_command(server.port, PASSWORD, "status", timeout=10)
    assert output.startswith("hostname: ")
    assert output.rstrip().endswith("#end")
    assert seconds < 10


def test_an_answer_of_many_packets_is_assembled_whole(start_srcds, standin_harness, tmp_path):
    root = standin_harness.make_game_root(tmp_path, f'rcon_password "{PASSWORD}"\n')
    plugins = root / "left4dead2" / "addons" / "sourcemod" / "plugins"
    plugins.mkdir(parents=True)
    names = [f"plugin_{i:03d}_{'x' * 40}" for i in range(300)]
    for name in names:
        (plugins / f"{name}.smx").write_bytes(b"")
    server = start_srcds(root)
    output, _seconds = _rcon.run_command(server.port, PASSWORD, "sm plugins list", timeout=10)
    assert len(output.encode()) > 3 * _rcon.MAX_COMMAND_BYTES  # srcds sent several packets
    assert output.splitlines()[0] == "[SM] Listing 300 plugins:"
    assert [line.split('"')[1] for line in output.splitlines()[1:]] == names


def test_a_wrong_password_is_said_so(server):
    with pytest.raises(_rcon.RconAuthError) as refused:
        _rcon.run_command(server.port, "wrong", "status", timeout=10)
    assert str(refused.value) == (
        "the server's RCON password is not the one left4me set (something in the server"
        " changed it): restart the server to restore its RCON password")


def test_an_address_banned_after_too_many_wrong_passwords_is_said_so(server):
    # sv_rcon_maxfailures 3 is below sv_rcon_minfailures (5): srcds swaps them, so more than
    # 3 failures within 30 s ban; the banning (4th) login gets no answer, the socket closes.
    for _attempt in range(3):
        with pytest.raises(_rcon.RconAuthError):
            _rcon.run_command(server.port, "wrong", "status", timeout=10)
    with pytest.raises(_rcon.RconBanned, match="banned after too many wrong passwords"):
        _rcon.run_command(server.port, "wrong", "status", timeout=10)
    with pytest.raises(_rcon.RconBanned, match="banned after too many wrong passwords"):
        _rcon.run_command(server.port, PASSWORD, "status", timeout=10)
    # The ban is srcds's IP filter: A2S from this address is answered "Banned by server".
    with pytest.raises(_a2s.A2SError, match="'Banned by server': this address is in its IP ban"):
        _a2s.query_info("127.0.0.1", server.port, timeout=2)


def test_no_password_is_refused_before_connecting():
    with pytest.raises(_rcon.RconAuthError, match="no RCON password"):
        _rcon.run_command(free_port(), "", "status", timeout=1)


def test_a_server_that_is_not_running_is_said_so():
    started = time.monotonic()
    with pytest.raises(_rcon.RconUnreachable, match="not running"):
        _rcon.run_command(free_port(), PASSWORD, "status", timeout=10)
    assert time.monotonic() - started < 1


def test_a_server_that_never_answers_times_out_at_the_deadline():
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = []
    thread = threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        with pytest.raises(_rcon.RconTimeout, match=r"within 0\.5 s \(logging in\)"):
            _rcon.run_command(listener.getsockname()[1], PASSWORD, "status", timeout=0.5)
        assert 0.5 <= time.monotonic() - started < 1.5
    finally:
        listener.close()
        for conn, _address in accepted:
            conn.close()


def test_output_stops_at_the_echo_of_the_empty_packet_not_at_the_first_short_one():
    """A fake srcds that sends an empty first packet (as srcds may for a command whose
    output comes on a later frame): only the echo ends the answer."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        conn, _address = listener.accept()
        with conn:
            reader = _rcon.PacketReader()
            packets: list = []
            while len(packets) < 1:  # the login
                packets += reader.feed(conn.recv(4096))
            conn.sendall(_rcon.encode_packet(1, 0) + _rcon.encode_packet(1, 2))
            while len(packets) < 3:  # the command and the empty packet behind it
                packets += reader.feed(conn.recv(4096))
            conn.sendall(_rcon.encode_packet(2, 0, b""))
            time.sleep(0.1)
            conn.sendall(_rcon.encode_packet(2, 0, b"late output\n"))
            conn.sendall(_rcon.encode_packet(3, 0) + _rcon.encode_packet(3, 0, b"\x00\x01\x00\x00"))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        output, _seconds = _rcon.run_command(listener.getsockname()[1], PASSWORD, "status",
                                             timeout=5)
    finally:
        listener.close()
    assert output == "late output\n"


# --- what the rcon module refuses, and where it connects (it only gathers and sends) ----

@pytest.mark.parametrize("name, command, timeout, message", [
    ("Bad!", "status", 30.0, "invalid instance name 'Bad!': use 1-64 characters"),
    ("Bad!", "status\nquit", 0.0, "invalid instance name 'Bad!'"),  # the name comes first
    ("coop1", "status\nquit", 0.0, "command contains a line feed: send one command per call"),
    ("coop1", " ", 30.0, "command must be a non-empty string"),
    ("coop1", "status", 0.0, "timeout must be above 0 seconds"),
    ("coop1", "status", -1.0, "timeout must be above 0 seconds"),
])
def test_a_bad_request_is_refused_before_anything_is_read(name, command, timeout, message):
    with pytest.raises(_rcon.RconError) as refused:
        _rcon.validate_request(name, command, timeout)
    assert str(refused.value).startswith(message)


def test_a_good_request_passes():
    assert _rcon.validate_request("coop1", "sm_say hello", 0.5) is None


ENV_FILE = "/etc/left4me/instances/coop1.env"


@pytest.mark.parametrize("env_text, port, address, where", [
    ("LEFT4ME_PORT=27015\nLEFT4ME_IP=0.0.0.0\n", 27015, "127.0.0.1", "127.0.0.1:27015"),
    ("LEFT4ME_PORT=27015\n", 27015, "127.0.0.1", "127.0.0.1:27015"),
    ('LEFT4ME_PORT="27025"\nLEFT4ME_IP=10.0.0.5\n', 27025, "10.0.0.5", "10.0.0.5:27025"),
    ("LEFT4ME_PORT=27015\nLEFT4ME_IP=::\n", 27015, "127.0.0.1", "127.0.0.1:27015"),
])
def test_rcon_goes_where_the_host_reaches_the_server(env_text, port, address, where):
    assert _rcon.target_of("coop1", ENV_FILE, env_text) == _rcon.Target(port, address, where)


@pytest.mark.parametrize("env_text, message", [
    (None, "instance 'coop1' is not configured on this host"
     " (/etc/left4me/instances/coop1.env is missing)"),
    ("LEFT4ME_IP=0.0.0.0\n", "/etc/left4me/instances/coop1.env has no LEFT4ME_PORT"),
    ("LEFT4ME_PORT=\n", "/etc/left4me/instances/coop1.env has no LEFT4ME_PORT"),
    ("LEFT4ME_PORT=game\n", "/etc/left4me/instances/coop1.env has no LEFT4ME_PORT"),
    ("this is not env\n", "/etc/left4me/instances/coop1.env:1: expected KEY=value, got"
     " 'this is not env'"),
])
def test_an_instance_rcon_cannot_reach_is_said_so(env_text, message):
    with pytest.raises(_rcon.RconError) as refused:
        _rcon.target_of("coop1", ENV_FILE, env_text)
    assert str(refused.value) == message


@pytest.mark.parametrize("active, sub, enabled, reason", [
    ("inactive", "dead", "disabled", "stopped"),
    ("inactive", "dead", "enabled", "stopped outside left4me (the unit is still enabled:"
     " stopped by hand, or the server quit on its own)"),
    ("activating", "start-pre", "enabled", "starting"),
])
def test_nothing_is_sent_to_a_server_that_is_not_running(active, sub, enabled, reason):
    unit_state = _srcds_info.classify(
        {"LoadState": "loaded", "ActiveState": active, "SubState": sub, "UnitFileState": enabled})
    assert not unit_state.running
    assert _rcon.not_running_message("versus1", unit_state) == (
        f"instance 'versus1' is not running ({reason}); nothing was sent")


def test_an_instance_without_a_password_says_where_to_set_it():
    cfg = _rcon.instance_cfg_path("coop1", "/var/lib/left4me")
    assert _rcon.no_password_message("coop1", cfg) == (
        "instance 'coop1' has no RCON password (no rcon_password in /var/lib/left4me/overlays/"
        ".instance-coop1/left4dead2/cfg/left4me/instance.cfg): set rcon_password with"
        " left4me.l4d2.srcds_instance (left4me never uses one an overlay's cfg sets)")


def test_players_steam_has_not_validated_yet_are_read_apart(server):
    """The stand-in's `status` lists them as real srcds does (STEAM_ID_PENDING, own userid)."""
    for name in ("Joiner", "Joiner"):
        _rcon.run_command(server.port, PASSWORD, f"sim_addplayer {name} 80 5 pending", timeout=10)
    output, _seconds = _rcon.run_command(server.port, PASSWORD, "status", timeout=10)
    humans = [p for p in _srcds_status.parse_status(output).players if not p.bot]
    assert [p.steam_id for p in humans] == ["STEAM_ID_PENDING"] * 2
    assert len({p.userid for p in humans}) == 2
