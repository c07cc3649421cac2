# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Tests for module_utils/_a2s.py: packets built and parsed, and queries against the
simulated srcds (repo standins/), which answers with a challenge first like srcds since 2020."""

from __future__ import annotations

import pathlib
import socket
import struct
import sys
import threading
import time

import pytest

try:
    from ansible_collections.left4me.l4d2.plugins.module_utils import _a2s
except ImportError:  # plain pytest from the repo root: make the collection importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))
    from ansible_collections.left4me.l4d2.plugins.module_utils import _a2s


def closed_udp_port() -> int:
    """A loopback UDP port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def info_payload(name: bytes = b"Coop", edf: bytes = b"") -> bytes:
    body = bytes([0x49, 17]) + name + b"\0c1m1_hotel\0left4dead2\0Left 4 Dead 2\0"
    body += struct.pack("<H", 550) + bytes([3, 8, 0]) + b"dl" + bytes([1, 1]) + b"2.2.4.3\0"
    return body + edf


def test_request_without_and_with_challenge():
    assert _a2s.build_info_request() == b"\xff\xff\xff\xffTSource Engine Query\x00"
    assert _a2s.build_info_request(b"\x01\x02\x03\x04").endswith(b"\x00\x01\x02\x03\x04")
    with pytest.raises(ValueError):
        _a2s.build_info_request(b"\x01")


def test_parse_info_reads_every_field_and_the_extra_data():
    edf = bytes([0x80 | 0x10 | 0x20 | 0x01]) + struct.pack("<H", 27015)
    edf += struct.pack("<Q", 42) + b"coop,tags\0" + struct.pack("<Q", 550)
    info = _a2s.parse_info(info_payload(edf=edf))
    assert info["name"] == "Coop" and info["map"] == "c1m1_hotel"
    assert (info["players"], info["max_players"], info["bots"]) == (3, 8, 0)
    assert info["password"] is True and info["vac"] is True
    assert (info["port"], info["steam_id"], info["keywords"], info["game_id"]) == (
        27015, 42, "coop,tags", 550)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x41\x00\x00\x00\x00", "not an A2S_INFO answer"),
        (info_payload()[:20], "unterminated string"),
        (info_payload()[:-9], "truncated"),
    ],
)
def test_parse_info_refuses_what_it_cannot_read(payload, message):
    with pytest.raises(_a2s.A2SError, match=message):
        _a2s.parse_info(payload)


def test_split_packets_are_reassembled():
    message = b"\xff\xff\xff\xff" + info_payload(name=b"x" * 2000)
    parts = [message[:1200], message[1200:]]
    packets = [b"\xfe\xff\xff\xff" + struct.pack("<iBBH", 7, 2, n, 1248) + p
               for n, p in enumerate(parts)]
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))

    def answer():
        _request, client = server.recvfrom(1400)
        for packet in reversed(packets):  # out of order, as UDP may deliver them
            server.sendto(packet, client)

    thread = threading.Thread(target=answer)
    thread.start()
    try:
        info = _a2s.query_info("127.0.0.1", server.getsockname()[1], timeout=2)
    finally:
        thread.join()
        server.close()
    assert info["name"] == "x" * 2000


def test_compressed_split_packets_are_refused():
    packet = b"\xfe\xff\xff\xff" + struct.pack("<IBBH", 0x80000001, 1, 0, 1248) + b"x" * 8
    with pytest.raises(_a2s.A2SError, match="compressed"):
        _a2s.split_packet_parts(packet)


def test_query_answers_the_challenge_of_the_simulated_srcds(
        start_srcds, standin_harness, tmp_path):
    root = standin_harness.make_game_root(tmp_path, server_cfg='hostname "left4me unit test"\n')
    server = start_srcds(root, "+maxplayers", "12")
    info = _a2s.query_info("127.0.0.1", server.port, timeout=2)
    assert (info["name"], info["map"], info["max_players"]) == ("left4me unit test",
                                                                "c1m1_hotel", 12)
    assert info["port"] == server.port and info["app_id"] == 550


def test_query_of_a_silent_port_times_out():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        with pytest.raises(_a2s.A2SError, match="no A2S answer"):
            _a2s.query_info("127.0.0.1", silent.getsockname()[1], timeout=0.3)


def test_query_of_a_closed_port_fails_fast():
    port = closed_udp_port()
    with pytest.raises(_a2s.A2SError):
        _a2s.query_info("127.0.0.1", port, timeout=2)


@pytest.fixture
def silent_ports():
    """Bound UDP sockets that never answer: a server still starting, as A2S sees it."""
    sockets = []
    for _count in range(20):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
    yield [s.getsockname()[1] for s in sockets]
    for sock in sockets:
        sock.close()


def test_waiting_for_twenty_silent_servers_is_bounded_by_retries_times_timeout(silent_ports):
    """The wait promised by the role: retries x timeout, whatever the number of servers
    (queried one after another, 20 servers x 3 retries x 0.2 s would take 12 s)."""
    targets = {f"s{i}": ("127.0.0.1", port) for i, port in enumerate(silent_ports)}
    started = time.monotonic()
    answers, failures = _a2s.wait_for_info(targets, retries=3, timeout=0.2)
    elapsed = time.monotonic() - started
    assert answers == {}
    assert sorted(failures) == sorted(targets)
    assert all("no A2S answer" in reason for reason in failures.values())
    assert 0.6 * 0.9 <= elapsed < 0.6 + 0.5, f"{elapsed:.2f} s for 3 rounds of 0.2 s"


def test_one_round_asks_every_server_at_once(
        start_srcds, standin_harness, tmp_path, silent_ports):
    root = standin_harness.make_game_root(tmp_path, server_cfg='hostname "answering"\n')
    server = start_srcds(root)
    targets = {"up": ("127.0.0.1", server.port), "closed": ("127.0.0.1", closed_udp_port()),
               **{f"s{i}": ("127.0.0.1", p) for i, p in enumerate(silent_ports)}}
    started = time.monotonic()
    results = _a2s.query_many(targets, timeout=1.0)
    assert time.monotonic() - started < 1.5
    assert results["up"]["name"] == "answering"
    assert isinstance(results["closed"], _a2s.A2SError)
    assert all(isinstance(results[f"s{i}"], _a2s.A2SError) for i in range(len(silent_ports)))


def test_waiting_stops_for_a_server_that_gave_up(silent_ports):
    asked = []

    def gave_up(pending):
        asked.append(sorted(pending))
        return {"broken": "the unit failed"}

    targets = {"broken": ("127.0.0.1", silent_ports[0])}
    started = time.monotonic()
    answers, failures = _a2s.wait_for_info(targets, retries=50, timeout=0.1, gave_up=gave_up)
    assert time.monotonic() - started < 1.0, "no waiting on after the unit failed"
    assert (answers, failures, asked) == ({}, {"broken": "the unit failed"}, [["broken"]])
