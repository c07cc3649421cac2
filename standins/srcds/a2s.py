"""A2S queries over UDP (Valve's Server Queries), answered the way a 2020+ srcds does."""

from __future__ import annotations

import hashlib
import secrets
import socket
import struct
import threading

from standins.srcds.game import GameServer

HEADER_SIMPLE = b"\xff\xff\xff\xff"
HEADER_SPLIT = b"\xfe\xff\xff\xff"
A2S_INFO = 0x54
A2S_PLAYER = 0x55
A2S_RULES = 0x56
S2C_CHALLENGE = 0x41
INFO_PAYLOAD = b"Source Engine Query\x00"
PROTOCOL_VERSION = 17
APP_ID = 550
# EDF bits: port, SteamID, keywords, 64-bit game id.
EDF_PORT, EDF_STEAMID, EDF_KEYWORDS, EDF_GAMEID = 0x80, 0x10, 0x20, 0x01
# Filter_SendBan (engine/sv_filter.cpp): NET_OutOfBandPrintf of A2A_PRINT ('l') and the text.
BANNED_BY_SERVER = b"lBanned by server\n\x00"
SPLIT_PAYLOAD_SIZE = 1248  # srcds splits answers larger than one ~1260-byte packet


def _cstring(text: str) -> bytes:
    return text.encode("utf-8", "replace") + b"\x00"


def anonymous_server_steamid(port: int) -> int:
    """[A:1:N:1]-style anonymous game server id: universe 1, type 4 (AnonGameServer)."""
    account = 100_000 + port
    return (1 << 56) | (4 << 52) | (1 << 32) | account


class QueryResponder:
    def __init__(self, server: GameServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self._secret = secrets.token_bytes(16)
        self._split_id = 0

    def challenge_for(self, address: tuple[str, int]) -> int:
        # Derived, not stored: a spoofed source address cannot learn another address's value.
        digest = hashlib.sha256(self._secret + f"{address[0]}:{address[1]}".encode()).digest()
        return struct.unpack("<i", digest[:4])[0]

    def handle(self, packet: bytes, address: tuple[str, int]) -> None:
        if self.server.is_ip_banned(address[0]):
            # NET_ProcessSocket drops every packet of a filtered address (an RCON ban is an
            # `addip`) and tells it so: Filter_SendBan, A2A_PRINT "Banned by server".
            self._send(BANNED_BY_SERVER, address)
            return
        if len(packet) < 5 or not packet.startswith(HEADER_SIMPLE):
            return
        kind, body = packet[4], packet[5:]
        if kind == A2S_INFO and body.startswith(INFO_PAYLOAD):
            self._answer(address, body[len(INFO_PAYLOAD) :], self._info_payload)
        elif kind == A2S_PLAYER:
            self._answer(address, body, self._player_payload)
        elif kind == A2S_RULES:
            self._answer(address, body, self._rules_payload)

    def _answer(self, address: tuple[str, int], challenge_field: bytes, build) -> None:
        if self.server.map_name is None:
            return  # no map loaded: srcds is not serving and stays silent
        expected = self.challenge_for(address)
        if len(challenge_field) < 4 or struct.unpack("<i", challenge_field[:4])[0] != expected:
            self._send(bytes([S2C_CHALLENGE]) + struct.pack("<i", expected), address)
            return
        self._send(build(), address)

    def _info_payload(self) -> bytes:
        info = self.server.info_snapshot()
        options = self.server.options
        head = bytes([0x49, PROTOCOL_VERSION])
        head += b"".join(_cstring(s) for s in (info.hostname, info.map_name, options.game))
        head += _cstring("Left 4 Dead 2") + struct.pack("<H", APP_ID)
        head += bytes([min(info.players, 255), min(info.max_players, 255), 0])
        head += b"dl" + bytes([int(info.password_protected), int(not options.insecure)])
        head += _cstring(info.version)
        edf = EDF_PORT | EDF_STEAMID | EDF_KEYWORDS | EDF_GAMEID
        tail = bytes([edf]) + struct.pack("<H", options.port)
        tail += struct.pack("<Q", anonymous_server_steamid(options.port))
        tail += _cstring(info.tags) + struct.pack("<Q", APP_ID)
        return head + tail

    def _player_payload(self) -> bytes:
        rows = self.server.player_rows()
        payload = bytearray([0x44, min(len(rows), 255)])
        for name, score, duration in rows[:255]:
            payload += b"\x00" + _cstring(name) + struct.pack("<if", score, duration)
        return bytes(payload)

    def _rules_payload(self) -> bytes:
        rules = self.server.public_rules()
        payload = bytearray([0x45]) + struct.pack("<H", len(rules))
        for name, value in rules.items():
            payload += _cstring(name) + _cstring(value)
        return bytes(payload)

    def _send(self, payload: bytes, address: tuple[str, int]) -> None:
        message = HEADER_SIMPLE + payload
        if len(message) <= SPLIT_PAYLOAD_SIZE:
            self.sock.sendto(message, address)
            return
        for packet in self._split(message):
            self.sock.sendto(packet, address)

    def _split(self, message: bytes) -> list[bytes]:
        """Source-engine split packets: id, total, number, size, then a slice of the message."""
        self._split_id = (self._split_id + 1) & 0x7FFF  # high bit would mean bzip2-compressed
        parts = [
            message[i : i + SPLIT_PAYLOAD_SIZE] for i in range(0, len(message), SPLIT_PAYLOAD_SIZE)
        ]
        return [
            HEADER_SPLIT
            + struct.pack("<iBBH", self._split_id, len(parts), number, SPLIT_PAYLOAD_SIZE)
            + part
            for number, part in enumerate(parts)
        ]


def serve_queries(responder: QueryResponder, stop: threading.Event) -> None:
    """Answer datagrams until asked to stop; the short timeout bounds shutdown latency."""
    responder.sock.settimeout(0.2)
    while not stop.is_set():
        if not responder.server.frames_running.wait(0.2):
            continue  # loading a map, or hung: the queries wait in the socket's buffer
        try:
            packet, address = responder.sock.recvfrom(2048)
        except TimeoutError:
            continue
        except OSError:
            return
        try:
            responder.handle(packet, address)
        except OSError:
            # A reply the host refuses (EPERM: the firewall drops a late answer to a query
            # that waited out a map load, its conntrack entry gone) is lost, as srcds's
            # NET_SendPacket loses it; the next query is answered.
            continue
