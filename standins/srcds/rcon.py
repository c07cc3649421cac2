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
# srcds reads every packet waiting on an RCON socket in the frame it runs a command in, so
# packets sent right behind a `changelevel` (a client's end-of-answer marker) are answered
# before the load begins. The stand-in's "frame" is at least this long (loaded test hosts).
SAME_FRAME_SECONDS = 0.1


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
class FailedLogins:
    """CRConServer::HandleFailedRconAuth (Source engine, engine/sv_rcon.cpp, e.g.
    github.com/nillerusr/source-engine): per address, a count of failed logins and the times
    of the last 20. A failure bans the address (``addip sv_rcon_banpenalty IP``) when the
    count is *above* sv_rcon_maxfailures (default 10: the 11th failure), or when more than
    sv_rcon_minfailures (default 5: the 6th) fell within sv_rcon_minfailuretime seconds
    (default 30). If maxfailures < minfailures srcds swaps the two cvars first. The count
    never resets (a good login does not clear it), only a restart does."""

    failures: dict[str, list[float]] = field(default_factory=dict)  # ip -> times, last 20
    counts: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record_failure(self, server: GameServer, ip: str, now: float | None = None) -> bool:
        """Count a failure; True when this one bans the address."""
        now = time.monotonic() if now is None else now
        with self.lock:
            self.counts[ip] = self.counts.get(ip, 0) + 1
            times = self.failures.setdefault(ip, [])
            times.append(now)
            del times[:-20]
            max_failures = server.cvar_int("sv_rcon_maxfailures", 10)
            min_failures = server.cvar_int("sv_rcon_minfailures", 5)
            if max_failures < min_failures:  # srcds swaps them, and keeps them swapped
                server.cvars["sv_rcon_maxfailures"] = str(min_failures)
                server.cvars["sv_rcon_minfailures"] = str(max_failures)
                max_failures, min_failures = min_failures, max_failures
            window = server.cvar_int("sv_rcon_minfailuretime", 30)
            recent = sum(1 for at in times if at + window >= now)
            return self.counts[ip] > max_failures or recent > min_failures


class RconSession:
    def __init__(self, server: GameServer, bans: FailedLogins, conn: socket.socket, ip: str):
        self.server = server
        self.bans = bans
        self.conn = conn
        self.ip = ip
        self.authenticated = False
        self.frame_until = 0.0  # packets read before this belong to the last command's frame

    def run(self) -> None:
        while not self.server.stop_requested.is_set():
            packet = read_packet(self.conn)
            if packet is None or self.server.is_ip_banned(self.ip):
                return
            if not self.handle(*packet):
                return

    def handle(self, request_id: int, kind: int, body: bytes) -> bool:
        """Answer one packet; False closes the connection. srcds reads RCON between frames:
        while it loads a map or hangs, the packet waits (and with a hang, for ever)."""
        if time.monotonic() >= self.frame_until and not self._wait_for_frame():
            return False
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

    def _wait_for_frame(self) -> bool:
        """Until the main loop runs frames again; False when the server stops first."""
        while not self.server.frames_running.wait(0.2):
            if self.server.stop_requested.is_set():
                return False
        return not self.server.stop_requested.is_set()

    def _authenticate(self, request_id: int, password: str) -> bool:
        expected = self.server.cvar("rcon_password")
        ok = bool(expected) and password == expected
        self.conn.sendall(encode_packet(request_id, SERVERDATA_RESPONSE_VALUE, b""))
        time.sleep(AUTH_RESPONSE_DELAY)
        self.authenticated = ok
        if ok:
            self.conn.sendall(encode_packet(request_id, SERVERDATA_AUTH_RESPONSE, b""))
            return True
        say(f'rcon from "{self.ip}": Bad Password')
        if self.bans.record_failure(self.server, self.ip):
            # CServerRemoteAccess::BadPassword: the banning failure gets no AUTH_RESPONSE, the
            # connection is closed; the ban is the console's `addip`, which also mutes A2S.
            say(f"Banning {self.ip} for rcon hacking attempts")
            penalty = self.server.cvar_int("sv_rcon_banpenalty", 0)
            self.server.execute(["addip", str(penalty), self.ip])
            return False
        self.conn.sendall(encode_packet(-1, SERVERDATA_AUTH_RESPONSE, b""))
        return True

    def _execute(self, request_id: int, command: str) -> None:
        if not self.authenticated:
            # Since 2012 srcds answers unauthenticated commands with an empty RESPONSE_VALUE.
            self.conn.sendall(encode_packet(request_id, SERVERDATA_RESPONSE_VALUE, b""))
            return
        say(f'rcon from "{self.ip}": command "{command}"')
        lines = self.server.execute_text(command)
        if self.server.hung:  # `sim_hang`: the frame that ran it never ends, nor replies
            self._wait_for_frame()
            return
        self.frame_until = time.monotonic() + max(SAME_FRAME_SECONDS,
                                                  1 / max(self.server.options.tickrate, 1))
        chunks = redirect_chunks(print_calls(lines))
        self.conn.sendall(
            b"".join(encode_packet(request_id, SERVERDATA_RESPONSE_VALUE, c) for c in chunks)
        )


def serve_rcon(server: GameServer, listener: socket.socket) -> None:
    """Accept connections until stop; one thread per connection like srcds's listener."""
    bans = FailedLogins()
    listener.settimeout(0.2)
    while not server.stop_requested.is_set():
        try:
            conn, address = listener.accept()
        except TimeoutError:
            continue
        except OSError:
            return
        if server.is_ip_banned(address[0]):
            conn.close()  # ShouldAcceptSocket: a filtered address is dropped on connect
            continue
        thread = threading.Thread(target=_run_session, args=(server, bans, conn, address[0]))
        thread.daemon = True
        thread.start()


def _run_session(server: GameServer, bans: FailedLogins, conn: socket.socket, ip: str) -> None:
    conn.settimeout(None)
    # A client that goes away mid-packet is simply forgotten, as srcds does.
    with conn, contextlib.suppress(OSError):
        RconSession(server, bans, conn, ip).run()
