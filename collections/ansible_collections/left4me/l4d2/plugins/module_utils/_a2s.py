# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# Shipped to hosts verbatim: standard library only (tests/collection/test_host_libraries.py).
"""A2S_INFO over UDP (Valve's Server Queries), standard library only.

Since 2020 srcds answers a bare A2S_INFO with S2C_CHALLENGE (``0x41`` and a
4-byte challenge); the query is then repeated with that challenge appended.
Answers larger than one packet come as Source split packets (``FE FF FF FF``),
which are reassembled here (uncompressed only, as srcds sends A2S_INFO).
"""

from __future__ import annotations

import selectors
import socket
import struct
import time

HEADER_SIMPLE = b"\xff\xff\xff\xff"
HEADER_SPLIT = b"\xfe\xff\xff\xff"
A2S_INFO = 0x54
S2C_CHALLENGE = 0x41
S2A_INFO = 0x49
# A2A_PRINT: srcds's IP filter answers every packet of a banned address with "Banned by
# server" (engine/sv_filter.cpp, Filter_SendBan); an RCON ban is such a filter (addip).
A2A_PRINT = 0x6C
INFO_PAYLOAD = b"Source Engine Query\x00"
# The challenge round trip plus a retry when a challenge answer is itself answered
# with a fresh challenge (srcds rotates them); more means the server is misbehaving.
MAX_EXCHANGES = 4


class A2SError(Exception):
    """No usable answer: timeout, refused, or a packet we cannot parse."""


def build_info_request(challenge: bytes = b"") -> bytes:
    """The A2S_INFO request, with the 4-byte challenge when the server asked for one."""
    if challenge and len(challenge) != 4:
        raise ValueError("an A2S challenge is 4 bytes")
    return HEADER_SIMPLE + bytes([A2S_INFO]) + INFO_PAYLOAD + challenge


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise A2SError("A2S_INFO answer is truncated")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def unpack(self, fmt: str) -> int:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def cstring(self) -> str:
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise A2SError("A2S_INFO answer has an unterminated string")
        text = self.data[self.pos : end].decode("utf-8", "replace")
        self.pos = end + 1
        return text

    @property
    def left(self) -> int:
        return len(self.data) - self.pos


def parse_info(payload: bytes) -> dict:
    """Parse an S2A_INFO payload (after the FF FF FF FF header) into a dict."""
    reader = _Reader(payload)
    if reader.byte() != S2A_INFO:
        raise A2SError(f"not an A2S_INFO answer (type 0x{payload[0]:02x})")
    info = {"protocol": reader.byte()}
    for key in ("name", "map", "folder", "game"):
        info[key] = reader.cstring()
    info["app_id"] = reader.unpack("<H")
    info["players"] = reader.byte()
    info["max_players"] = reader.byte()
    info["bots"] = reader.byte()
    info["server_type"] = chr(reader.byte())
    info["environment"] = chr(reader.byte())
    info["password"] = bool(reader.byte())
    info["vac"] = bool(reader.byte())
    info["version"] = reader.cstring()
    if reader.left:
        edf = reader.byte()
        if edf & 0x80:
            info["port"] = reader.unpack("<H")
        if edf & 0x10:
            info["steam_id"] = reader.unpack("<Q")
        if edf & 0x40:
            info["tv_port"] = reader.unpack("<H")
            info["tv_name"] = reader.cstring()
        if edf & 0x20:
            info["keywords"] = reader.cstring()
        if edf & 0x01:
            info["game_id"] = reader.unpack("<Q")
    return info


def split_packet_parts(packet: bytes) -> tuple[int, int, int, bytes]:
    """(id, total, number, data) of one Source split packet, header included."""
    if len(packet) < 16 or not packet.startswith(HEADER_SPLIT):
        raise A2SError("short or malformed split packet")
    packet_id, total, number, _size = struct.unpack("<iBBH", packet[4:12])
    if packet_id & 0x80000000:
        raise A2SError("compressed split answers are not supported")
    return packet_id, total, number, packet[12:]


class _Probe:
    """One A2S_INFO exchange with one server, driven by :func:`query_many`'s socket loop."""

    def __init__(self, address: str, port: int) -> None:
        self.target = (address, port)
        self.sock: socket.socket | None = None
        self.challenge = b""
        self.exchanges = 0
        self.parts: dict[int, bytes] = {}
        self.result: dict | None = None
        self.error = "no A2S answer before the timeout"

    def open(self) -> None:
        address, port = self.target
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        try:
            self.sock.connect(self.target)
        except OSError as exc:
            raise A2SError(f"cannot reach {address}:{port}: {exc.strerror or exc}") from None
        self.send()

    def send(self) -> None:
        if self.exchanges >= MAX_EXCHANGES:
            raise A2SError("the server kept answering with new challenges")
        self.exchanges += 1
        try:
            self.sock.send(build_info_request(self.challenge))
        except OSError as exc:
            raise A2SError(f"A2S query failed: {exc.strerror or exc}") from None

    def on_readable(self) -> bool:
        """Read what arrived; True once the exchange is over (answered or failed for good)."""
        while True:
            try:
                packet = self.sock.recv(65535)
            except BlockingIOError:
                return False
            except OSError as exc:  # e.g. ICMP port unreachable: nothing listens yet
                raise A2SError(f"A2S query failed: {exc.strerror or exc}") from None
            answer = self._feed(packet)
            if answer is None:
                continue
            if answer[:1] == bytes([A2A_PRINT]):
                said = answer[1:].split(b"\x00", 1)[0].decode("utf-8", "replace").strip()
                raise A2SError(
                    f"the server answered {said!r}: this address is in its IP ban list"
                    " (after too many refused RCON logins srcds bans the address for"
                    " sv_rcon_banpenalty minutes, 0 = until the server restarts)")
            if answer[:1] == bytes([S2C_CHALLENGE]) and len(answer) >= 5:
                self.challenge = answer[1:5]
                self.parts.clear()
                self.send()
                continue
            self.result = parse_info(answer)
            return True

    def _feed(self, packet: bytes) -> bytes | None:
        """A whole answer without the FF FF FF FF header, or None while split parts are due."""
        if packet.startswith(HEADER_SIMPLE):
            return packet[4:]
        _id, total, number, data = split_packet_parts(packet)
        self.parts[number] = data
        if not total or len(self.parts) < total:
            return None
        message = b"".join(self.parts.get(i, b"") for i in range(total))
        if not message.startswith(HEADER_SIMPLE):
            raise A2SError("reassembled split answer lacks the simple header")
        return message[4:]

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()


def query_many(targets: dict, timeout: float = 1.0) -> dict:
    """Ask every ``key: (address, port)`` for A2S_INFO at once, all within one ``timeout``.

    One non-blocking socket per server and one select loop over all of them, so
    N servers cost one timeout, not N. Returns ``key: info dict`` for servers that
    answered and ``key: A2SError`` for the others.
    """
    deadline = time.monotonic() + timeout
    results: dict = {}
    probes: dict = {}
    with selectors.DefaultSelector() as selector:
        try:
            for key, (address, port) in targets.items():
                probe = _Probe(address, port)
                probes[key] = probe
                try:
                    probe.open()
                except A2SError as exc:
                    results[key] = exc
                    continue
                selector.register(probe.sock, selectors.EVENT_READ, key)
            while len(results) < len(probes):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                for selected, _events in selector.select(remaining):
                    key = selected.data
                    probe = probes[key]
                    try:
                        done = probe.on_readable()
                    except A2SError as exc:
                        results[key] = exc
                        done = True
                    else:
                        if done:
                            results[key] = probe.result
                    if done:
                        selector.unregister(probe.sock)
        finally:
            for probe in probes.values():
                probe.close()
    for key, probe in probes.items():
        results.setdefault(key, A2SError(probe.error))
    return results


def query_info(address: str, port: int, timeout: float = 1.0) -> dict:
    """Ask ``address:port`` for A2S_INFO, answering a challenge if one comes back."""
    result = query_many({0: (address, port)}, timeout)[0]
    if isinstance(result, A2SError):
        raise result
    return result


def wait_for_info(targets: dict, retries: int, timeout: float, gave_up=None,
                  clock=time.monotonic, sleep=time.sleep) -> tuple[dict, dict]:
    """Query every server once per round, all at once, for at most ``retries`` rounds.

    A round lasts ``timeout`` seconds whatever the number of servers, so the whole
    wait is bounded by ``retries x timeout`` (plus what ``gave_up`` costs).
    ``gave_up(pending keys)`` is asked after every round without all answers and
    returns ``key: reason`` for servers not worth waiting for (e.g. a failed unit).
    Returns ``(answers, failures)``: ``key: info`` (with ``seconds`` until it
    answered) and ``key: reason`` for every server that did not answer.
    """
    started = clock()
    pending = dict(targets)
    answers: dict = {}
    failures: dict = {}
    last_error: dict = {}
    for attempt in range(retries):
        round_started = clock()
        for key, result in query_many(pending, timeout).items():
            if isinstance(result, A2SError):
                last_error[key] = str(result)
                continue
            result["seconds"] = round(clock() - started, 2)
            answers[key] = result
            del pending[key]
        if not pending:
            break
        if gave_up is not None:
            for key, reason in gave_up(list(pending)).items():
                failures[key] = reason
                pending.pop(key, None)
            if not pending:
                break
        spent = clock() - round_started
        if attempt + 1 < retries and spent < timeout:
            sleep(timeout - spent)
    for key in pending:
        failures[key] = last_error.get(key, "no A2S answer before the timeout")
    return answers, failures
