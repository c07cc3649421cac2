# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A2S_INFO over UDP (Valve's Server Queries), standard library only.

Since 2020 srcds answers a bare A2S_INFO with S2C_CHALLENGE (``0x41`` and a
4-byte challenge); the query is then repeated with that challenge appended.
Answers larger than one packet come as Source split packets (``FE FF FF FF``),
which are reassembled here (uncompressed only, as srcds sends A2S_INFO).
"""

from __future__ import annotations

import socket
import struct
import time

HEADER_SIMPLE = b"\xff\xff\xff\xff"
HEADER_SPLIT = b"\xfe\xff\xff\xff"
A2S_INFO = 0x54
S2C_CHALLENGE = 0x41
S2A_INFO = 0x49
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


def _receive(sock: socket.socket, deadline: float) -> bytes:
    """One whole answer (reassembling split packets), without the FF FF FF FF header."""
    parts: dict[int, bytes] = {}
    total = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise A2SError("no A2S answer before the timeout")
        sock.settimeout(remaining)
        try:
            packet = sock.recv(65535)
        except TimeoutError:
            raise A2SError("no A2S answer before the timeout") from None
        except OSError as exc:
            raise A2SError(f"A2S query failed: {exc.strerror or exc}") from None
        if packet.startswith(HEADER_SIMPLE):
            return packet[4:]
        _id, total, number, data = split_packet_parts(packet)
        parts[number] = data
        if total and len(parts) == total:
            message = b"".join(parts[i] for i in range(total))
            if not message.startswith(HEADER_SIMPLE):
                raise A2SError("reassembled split answer lacks the simple header")
            return message[4:]


def query_info(address: str, port: int, timeout: float = 1.0) -> dict:
    """Ask ``address:port`` for A2S_INFO, answering a challenge if one comes back."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    deadline = time.monotonic() + timeout
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect((address, port))
        except OSError as exc:
            raise A2SError(f"cannot reach {address}:{port}: {exc.strerror or exc}") from None
        challenge = b""
        for _exchange in range(MAX_EXCHANGES):
            try:
                sock.send(build_info_request(challenge))
            except OSError as exc:
                raise A2SError(f"A2S query failed: {exc.strerror or exc}") from None
            answer = _receive(sock, deadline)
            if answer[:1] == bytes([S2C_CHALLENGE]) and len(answer) >= 5:
                challenge = answer[1:5]
                continue
            return parse_info(answer)
    raise A2SError("the server kept answering with new challenges")
