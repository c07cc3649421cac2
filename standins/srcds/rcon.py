"""Source RCON over TCP, including srcds's quirks that clients depend on."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from standins.srcds.console import print_calls, say
from standins.srcds.game import GameServer

SERVERDATA_AUTH = 3
SERVERDATA_AUTH_RESPONSE = 2
SERVERDATA_EXECCOMMAND = 2
SERVERDATA_RESPONSE_VALUE = 0
# srcds collects a command's console output in a 4096-byte buffer (sv_redirect_buffer), NUL
# included, and sends it as one RESPONSE_VALUE whenever the next print would not fit: so a
# packet carries at most 4095 bytes of text and is cut between print calls, never inside one.
MAX_RESPONSE_TEXT = 4095
MAX_REQUEST_SIZE = 4096 + 10
# srcds answers AUTH with an empty RESPONSE_VALUE, then AUTH_RESPONSE on a later frame. The
# pause keeps the two in separate reads, which line-at-a-time clients (python `rcon`) rely on.
AUTH_RESPONSE_DELAY = 0.03
# The body of the packet srcds sends after mirroring an empty RESPONSE_VALUE (0x00000100 LE).
JUNK_BODY = b"\x00\x01\x00\x00"


def redirect_chunks(prints: Iterable[str]) -> list[bytes]:
    """The packet bodies srcds sends for these print calls (SV_RedirectAddText, then the final
    flush of SV_RedirectEnd, which sends even an empty buffer)."""
    chunks: list[bytes] = []
    buffer = b""
    for text in prints:
        data = text.encode("utf-8", "replace")
        if len(buffer) + len(data) > MAX_RESPONSE_TEXT:
            chunks.append(buffer)
            buffer = b""
        buffer += data[: MAX_RESPONSE_TEXT - len(buffer)]  # strncat truncates an oversized print
    chunks.append(buffer)
    return chunks


def encode_packet(request_id: int, kind: int, body: bytes) -> bytes:
    payload = struct.pack("<ii", request_id, kind) + body + b"\x00\x00"
    return struct.pack("<i", len(payload)) + payload


def _recv_exact(conn: socket.socket, count: int) -> bytes | None:
    data = bytearray()
    while len(data) < count:
        chunk = conn.recv(count - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def read_packet(conn: socket.socket) -> tuple[int, int, bytes] | None:
    """One request packet, or None when the peer closed or sent something malformed."""
    size_field = _recv_exact(conn, 4)
    if size_field is None:
        return None
    size = struct.unpack("<i", size_field)[0]
    if not 10 <= size <= MAX_REQUEST_SIZE:
        return None
    payload = _recv_exact(conn, size)
    if payload is None:
        return None
    request_id, kind = struct.unpack("<ii", payload[:8])
    return request_id, kind, payload[8:-2].rstrip(b"\x00")


@dataclass
class BanList:
    """Per-address failed-auth counters and bans (sv_rcon_maxfailures / sv_rcon_banpenalty)."""

    failures: dict[str, int] = field(default_factory=dict)
    banned_until: dict[str, float] = field(default_factory=dict)  # inf = permanent
    lock: threading.Lock = field(default_factory=threading.Lock)

    def is_banned(self, ip: str) -> bool:
        with self.lock:
            until = self.banned_until.get(ip)
            if until is not None and time.monotonic() >= until:
                del self.banned_until[ip]
                return False
            return until is not None

    def record_failure(self, ip: str, max_failures: int, penalty_minutes: float) -> bool:
        """Count a failure; True when this one triggers a ban."""
        with self.lock:
            self.failures[ip] = self.failures.get(ip, 0) + 1
            if self.failures[ip] < max(max_failures, 1):
                return False
            self.failures.pop(ip)
            duration = penalty_minutes * 60 if penalty_minutes > 0 else float("inf")
            self.banned_until[ip] = time.monotonic() + duration
            return True

    def record_success(self, ip: str) -> None:
        with self.lock:
            self.failures.pop(ip, None)


class RconSession:
    def __init__(self, server: GameServer, bans: BanList, conn: socket.socket, ip: str):
        self.server = server
        self.bans = bans
        self.conn = conn
        self.ip = ip
        self.authenticated = False

    def run(self) -> None:
        while not self.server.stop_requested.is_set():
            packet = read_packet(self.conn)
            if packet is None or self.bans.is_banned(self.ip):
                return
            if not self.handle(*packet):
                return

    def handle(self, request_id: int, kind: int, body: bytes) -> bool:
        """Answer one packet; False closes the connection."""
        if kind == SERVERDATA_AUTH:
            return self._authenticate(request_id, body.decode("utf-8", "replace"))
        if kind == SERVERDATA_RESPONSE_VALUE:
            # The terminator trick: mirror the empty packet, then srcds's fixed junk packet.
            # Sent in one write so a client that stops at the mirror never sees stale junk.
            self.conn.sendall(
                encode_packet(request_id, SERVERDATA_RESPONSE_VALUE, b"")
                + encode_packet(request_id, SERVERDATA_RESPONSE_VALUE, JUNK_BODY)
            )
            return True
        if kind == SERVERDATA_EXECCOMMAND:
            self._execute(request_id, body.decode("utf-8", "replace"))
        return True

    def _authenticate(self, request_id: int, password: str) -> bool:
        expected = self.server.cvar("rcon_password")
        ok = bool(expected) and password == expected
        self.conn.sendall(encode_packet(request_id, SERVERDATA_RESPONSE_VALUE, b""))
        time.sleep(AUTH_RESPONSE_DELAY)
        self.conn.sendall(encode_packet(request_id if ok else -1, SERVERDATA_AUTH_RESPONSE, b""))
        self.authenticated = ok
        if ok:
            self.bans.record_success(self.ip)
            return True
        say(f'rcon from "{self.ip}": Bad Password')
        max_failures = self.server.cvar_int("sv_rcon_maxfailures", 10)
        penalty = self.server.cvar_int("sv_rcon_banpenalty", 0)
        if self.bans.record_failure(self.ip, max_failures, penalty):
            say(f"Banning {self.ip} for rcon hacking attempts")
            return False
        return True

    def _execute(self, request_id: int, command: str) -> None:
        if not self.authenticated:
            # Since 2012 srcds answers unauthenticated commands with an empty RESPONSE_VALUE.
            self.conn.sendall(encode_packet(request_id, SERVERDATA_RESPONSE_VALUE, b""))
            return
        say(f'rcon from "{self.ip}": command "{command}"')
        lines = self.server.execute_text(command)
        chunks = redirect_chunks(print_calls(lines))
        self.conn.sendall(
            b"".join(encode_packet(request_id, SERVERDATA_RESPONSE_VALUE, c) for c in chunks)
        )


def serve_rcon(server: GameServer, listener: socket.socket) -> None:
    """Accept connections until stop; one thread per connection like srcds's listener."""
    bans = BanList()
    listener.settimeout(0.2)
    while not server.stop_requested.is_set():
        try:
            conn, address = listener.accept()
        except TimeoutError:
            continue
        except OSError:
            return
        if bans.is_banned(address[0]):
            conn.close()  # banned addresses are dropped on connect, before any packet
            continue
        thread = threading.Thread(target=_run_session, args=(server, bans, conn, address[0]))
        thread.daemon = True
        thread.start()


def _run_session(server: GameServer, bans: BanList, conn: socket.socket, ip: str) -> None:
    conn.settimeout(None)
    # A client that goes away mid-packet is simply forgotten, as srcds does.
    with conn, contextlib.suppress(OSError):
        RconSession(server, bans, conn, ip).run()
