# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# Shipped to hosts verbatim: standard library only (tests/collection/test_host_libraries.py).
"""Source RCON over TCP (Valve's protocol, as srcds speaks it), standard library only.

A packet is ``<int32 size><int32 id><int32 type><body>\\0\\0``, little endian, where
size counts everything after itself. srcds sends a command's output in as many
``SERVERDATA_RESPONSE_VALUE`` packets as its 4 KB redirect buffer needs and never
says which one is the last; so after the command an empty ``RESPONSE_VALUE`` is
sent, which srcds mirrors once everything before it has gone out: output is read
until that echo. The whole exchange runs under one deadline.

The password is read from the instance's own config layer on the host (root only,
:func:`instance_password`), never from the tree a tenant controls, so it never crosses
the network or the controller. A login is tried once per call: srcds bans an address
after repeated failures. The rcon module only gathers and
sends; what it refuses and where it connects are decided here (:func:`validate_request`,
:func:`target_of`, :func:`not_running_message`, :func:`no_password_message`).
"""

from __future__ import annotations

import os
import re
import socket
import struct
import time
from dataclasses import dataclass

from ansible_collections.left4me.l4d2.plugins.module_utils._common import (
    UnsafeFileError,
    read_beneath,
    validate_id,
    write_atomic,
)
from ansible_collections.left4me.l4d2.plugins.module_utils._layout import (
    INSTANCE_CFG_IN_LAYER,
    HostLayout,
    parse_env,
)

TYPE_CHECKING = False  # typing's own TYPE_CHECKING would cost typing's import
if TYPE_CHECKING:  # for annotations only
    from ansible_collections.left4me.l4d2.plugins.module_utils._srcds_info import UnitState

SERVERDATA_AUTH = 3
SERVERDATA_AUTH_RESPONSE = 2
SERVERDATA_EXECCOMMAND = 2
SERVERDATA_RESPONSE_VALUE = 0
AUTH_ID = 1
COMMAND_ID = 2
TERMINATOR_ID = 3
AUTH_FAILED_ID = -1
# srcds reads requests into a 4096-byte buffer: a longer command would be cut or dropped.
MAX_COMMAND_BYTES = 4000
# srcds sends at most 4095 bytes of text a packet; anything far larger is not srcds.
MAX_PACKET_SIZE = 64 * 1024
MIN_PACKET_SIZE = 10
DEFAULT_TIMEOUT = 30.0
MAX_OUTPUT_BYTES = 4 * 1024 * 1024
LOOPBACK = "127.0.0.1"

# instance.cfg (written by srcds_instance) and cfg files: `rcon_password "value"`.
_RCON_PASSWORD_RE = re.compile(
    r"^\s*rcon_password\s+(?:\"([^\"\r\n]*)\"?|([^\s\";/]+))", re.I | re.M
)


# One login per call, never retried: srcds bans an address after a few wrong passwords.
AUTH_FAILED_MESSAGE = (
    "the server's RCON password is not the one left4me set (something in the server changed"
    " it): restart the server to restore its RCON password"
)


class RconError(Exception):
    """RCON did not work; the message says why and what to do."""


class RconUnreachable(RconError):
    """Nothing accepted the connection (the server is not running or not listening)."""


class RconAuthError(RconError):
    """The server refused the password."""


class RconBanned(RconError):
    """The server closed the connection before answering (an address ban, most often)."""


class RconTimeout(RconError):
    """No complete answer before the deadline."""


class RconProtocolError(RconError):
    """The peer sent something that is not Source RCON."""


# What a console refuses, with why. srcds runs every `;`-separated part of a line, so each
# part is checked (split_commands); rcon_password is refused anywhere in the line, because
# an alias (`alias x "rcon_password y"; x`) runs it later under another name.
_CLEAN_EXIT = ("stop or restart the server through left4me instead: srcds exits cleanly on"
               " it, and its unit restarts only a server that failed")
REFUSED_COMMANDS = {
    "rcon_password": "the RCON password is the server's own setting (left4me.l4d2.srcds_instance,"
                     " the UI's blueprint); changed from a console, left4me could no longer"
                     " reach the server",
    "quit": _CLEAN_EXIT,
    "exit": _CLEAN_EXIT,
    "_restart": _CLEAN_EXIT,
}
_RCON_PASSWORD_WORD_RE = re.compile(r"(?<![A-Za-z0-9_])rcon_password(?![A-Za-z0-9_])", re.I)
# srcds's tokenizer ends a word at white space, a quote or one of these.
_WORD_RE = re.compile(r"[^\s\"{}()':]*")


def split_commands(line: str) -> list[str]:
    """The commands srcds runs for one console line: `;` outside double quotes separates
    them (a `;` inside quotes is part of an argument)."""
    commands, current, quoted = [], [], False
    for char in line:
        if char == '"':
            quoted = not quoted
        if char == ";" and not quoted:
            commands.append("".join(current))
            current = []
        else:
            current.append(char)
    commands.append("".join(current))
    return [command.strip() for command in commands if command.strip()]


def command_word(command: str) -> str:
    """The command srcds runs for one part: its first word, quotes stripped, lower case."""
    match = _WORD_RE.match(command.replace('"', "").lstrip())
    return match.group(0).lower() if match else ""


def refusal(line: str) -> str | None:
    """Why a console line is refused (:data:`REFUSED_COMMANDS`), or None when it may run."""
    if _RCON_PASSWORD_WORD_RE.search(line):
        return (f"rcon_password is refused (anywhere in the line, aliases included):"
                f" {REFUSED_COMMANDS['rcon_password']}")
    for command in split_commands(line):
        word = command_word(command)
        if word in REFUSED_COMMANDS:
            return f"{word} is refused: {REFUSED_COMMANDS[word]}"
    return None


def validate_command(command: object) -> str:
    """The command, or RconError: one line, no NUL, not empty, not too long, nothing
    :func:`refusal` refuses."""
    if not isinstance(command, str) or not command.strip():
        raise RconError("command must be a non-empty string")
    bad = [name for char, name in (("\n", "line feed"), ("\r", "carriage return"),
                                   ("\x00", "NUL")) if char in command]
    if bad:
        raise RconError(
            f"command contains a {' and a '.join(bad)}: send one command per call (srcds would"
            " run the text after a line break as a further command, and a NUL ends the packet)"
        )
    if len(command.encode("utf-8")) > MAX_COMMAND_BYTES:
        raise RconError(f"command is longer than {MAX_COMMAND_BYTES} bytes")
    refused = refusal(command)
    if refused:
        raise RconError(refused)
    return command


def _require_password(password: str) -> None:
    if not password:
        raise RconAuthError("no RCON password is set for this server: srcds refuses every"
                            " RCON login until rcon_password is set")


def encode_packet(request_id: int, kind: int, body: bytes = b"") -> bytes:
    payload = struct.pack("<ii", request_id, kind) + body + b"\x00\x00"
    return struct.pack("<i", len(payload)) + payload


@dataclass(frozen=True)
class Packet:
    request_id: int
    kind: int
    body: bytes


class PacketReader:
    """Splits a byte stream into packets; feed it what ``recv`` returned."""

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, data: bytes) -> list[Packet]:
        self.buffer += data
        packets = []
        while len(self.buffer) >= 4:
            size = struct.unpack("<i", self.buffer[:4])[0]
            if not MIN_PACKET_SIZE <= size <= MAX_PACKET_SIZE:
                raise RconProtocolError(
                    f"the peer sent a packet of size {size}: this is not Source RCON"
                )
            if len(self.buffer) < 4 + size:
                break
            payload = self.buffer[4 : 4 + size]
            self.buffer = self.buffer[4 + size :]
            request_id, kind = struct.unpack("<ii", payload[:8])
            # Body then two NULs; srcds's empty body is just the two NULs.
            packets.append(Packet(request_id, kind, payload[8:-2].rstrip(b"\x00")))
        return packets


def read_rcon_password(cfg_text: str | None) -> str | None:
    """The last ``rcon_password`` a cfg file sets (srcds keeps the last), or None."""
    if not cfg_text:
        return None
    found = None
    for match in _RCON_PASSWORD_RE.finditer(cfg_text):
        found = match.group(1) if match.group(1) is not None else match.group(2)
    return found


class RconClient:
    """One connection, one deadline: ``connect``, ``authenticate``, ``execute``, ``close``."""

    def __init__(self, port: int, address: str = LOOPBACK, timeout: float = DEFAULT_TIMEOUT,
                 clock=time.monotonic) -> None:
        self.target = (address, port)
        self.timeout = timeout
        self.clock = clock
        self.deadline = clock() + timeout
        self.sock: socket.socket | None = None
        self.reader = PacketReader()
        self.pending: list[Packet] = []

    def __enter__(self) -> RconClient:
        self.connect()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _timeout(self, doing: str) -> RconTimeout:
        return RconTimeout(
            f"no complete RCON answer from {self.target[0]}:{self.target[1]} within"
            f" {self.timeout:g} s ({doing}); the server may be busy, hung or changing map"
        )

    def _remaining(self, doing: str) -> float:
        left = self.deadline - self.clock()
        if left <= 0:
            raise self._timeout(doing)
        return left

    def connect(self) -> None:
        address, port = self.target
        try:
            self.sock = socket.create_connection(self.target, self._remaining("connecting"))
        except ConnectionRefusedError:
            raise RconUnreachable(
                f"nothing accepts RCON connections on {address}:{port}: the server is not"
                " running (or is still starting)"
            ) from None
        except TimeoutError:
            raise self._timeout("connecting") from None
        except OSError as exc:
            raise RconUnreachable(
                f"cannot connect to {address}:{port}: {exc.strerror or exc}"
            ) from None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def send(self, request_id: int, kind: int, body: bytes = b"") -> None:
        if self.sock is None:
            raise RconError("the RCON connection is closed")
        self.sock.settimeout(self._remaining("sending"))
        try:
            self.sock.sendall(encode_packet(request_id, kind, body))
        except TimeoutError:
            raise self._timeout("sending") from None
        except OSError as exc:
            raise RconBanned(self._closed_message(f"sending failed: {exc.strerror or exc}")) \
                from None

    def _closed_message(self, detail: str) -> str:
        return (
            f"the server at {self.target[0]}:{self.target[1]} closed the RCON connection"
            f" ({detail}): this address is banned after too many wrong passwords (the 6th"
            " within sv_rcon_minfailuretime, 30 s, or the 11th in all, sv_rcon_maxfailures;"
            " the ban lasts sv_rcon_banpenalty minutes, 0 = until the server restarts, and"
            " mutes its A2S answers too), or the server is shutting down"
        )

    def next_packet(self, doing: str) -> Packet:
        if self.sock is None:
            raise RconError("the RCON connection is closed")
        while not self.pending:
            self.sock.settimeout(self._remaining(doing))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                raise self._timeout(doing) from None
            except ConnectionResetError:
                data = b""
            if not data:
                raise RconBanned(self._closed_message(f"while {doing}"))
            self.pending.extend(self.reader.feed(data))
        return self.pending.pop(0)

    def authenticate(self, password: str) -> None:
        _require_password(password)
        self.send(AUTH_ID, SERVERDATA_AUTH, password.encode("utf-8"))
        while True:
            # srcds first sends an empty RESPONSE_VALUE, then the AUTH_RESPONSE.
            packet = self.next_packet("logging in")
            if packet.kind != SERVERDATA_AUTH_RESPONSE:
                continue
            if packet.request_id == AUTH_FAILED_ID:
                raise RconAuthError(AUTH_FAILED_MESSAGE)
            if packet.request_id != AUTH_ID:
                raise RconProtocolError(f"unexpected login answer id {packet.request_id}")
            return

    def execute(self, command: str, max_bytes: int = MAX_OUTPUT_BYTES) -> str:
        """Run one command; its output, however many packets it came in."""
        validate_command(command)
        self.send(COMMAND_ID, SERVERDATA_EXECCOMMAND, command.encode("utf-8"))
        # Sent right behind the command: srcds answers requests in order, so its echo comes
        # after the last packet of the command's output.
        self.send(TERMINATOR_ID, SERVERDATA_RESPONSE_VALUE)
        chunks: list[bytes] = []
        size = 0
        while True:
            packet = self.next_packet(f"reading the answer to {command.split()[0]!r}")
            if packet.request_id == TERMINATOR_ID:
                break
            if packet.request_id == COMMAND_ID and packet.kind == SERVERDATA_RESPONSE_VALUE:
                size += len(packet.body)
                if size > max_bytes:
                    raise RconProtocolError(f"the answer is larger than {max_bytes} bytes")
                chunks.append(packet.body)
        return b"".join(chunks).decode("utf-8", "replace")


def run_command(port: int, password: str, command: str, timeout: float = DEFAULT_TIMEOUT,
                address: str = LOOPBACK) -> tuple[str, float]:
    """Log in, run ``command``, return (output, seconds it took); RconError on failure."""
    validate_command(command)
    _require_password(password)
    started = time.monotonic()
    with RconClient(port, address, timeout) as client:
        client.authenticate(password)
        output = client.execute(command)
    return output, round(time.monotonic() - started, 3)


# --- where the password is -------------------------------------------------------------

def instance_cfg_path(name: str, state_dir: str) -> str:
    """srcds_instance's per-instance cfg (root:left4me 0640), which holds rcon_password."""
    return HostLayout(state_dir=state_dir).instance_cfg(name)


def instance_password(name: str, state_dir: str) -> str | None:
    """The RCON password left4me set for instance ``name``, or None.

    Read from the instance's own config layer only (root-owned; its instance.cfg runs
    again after server.cfg at every map load, so it is the password the server keeps),
    never from the merged tree a tenant controls, and never through a link.
    """
    validate_id(name, "instance name", RconError)
    try:
        text = read_beneath(HostLayout(state_dir=state_dir).config_layer(name),
                            INSTANCE_CFG_IN_LAYER)
    except UnsafeFileError as exc:
        raise RconError(str(exc)) from None
    return read_rcon_password(text)


# --- what the rcon module refuses, and where it connects ---------------------------------


def validate_request(name: object, command: object, timeout: float) -> None:
    """RconError for a bad instance name, command (:func:`validate_command`) or timeout."""
    validate_id(name, "instance name", RconError)
    validate_command(command)
    if timeout <= 0:
        raise RconError("timeout must be above 0 seconds")


@dataclass(frozen=True)
class Target:
    """Where the host reaches an instance's RCON: ``where`` is ``address:port`` as reported."""

    port: int
    address: str
    where: str


def target_of(name: str, env_file: str, env_text: str | None) -> Target:
    """The instance's RCON address from its env file's text (None: the file is missing);
    RconError when it is not configured or names no port."""
    # Imported here: the log panel imports this module on every request (left4me-read).
    from ansible_collections.left4me.l4d2.plugins.module_utils._srcds_info import probe_address

    if env_text is None:
        raise RconError(f"instance {name!r} is not configured on this host ({env_file} is"
                        " missing)")
    env = parse_env(env_text, env_file, RconError)
    port = env.get("LEFT4ME_PORT", "")
    if not port.isdigit():
        raise RconError(f"{env_file} has no LEFT4ME_PORT")
    address = probe_address(env.get("LEFT4ME_IP"))
    return Target(int(port), address, f"{address}:{port}")


def not_running_message(name: str, unit_state: UnitState) -> str:
    return f"instance {name!r} is not running ({unit_state.reason}); nothing was sent"


# --- one refused login per run of the server, whoever asks ------------------------------

# srcds bans an address at its 6th failed login within 30 s or its 11th in all
# (sv_rcon_minfailures / sv_rcon_maxfailures), and the ban also mutes A2S for it. The host's
# own 127.0.0.1 must never get there: the first refusal is remembered here, per instance and
# per run of its unit (systemd's InvocationID), and every path (the rcon module, so the UI's
# console; srcds_info, so the UI's poller) asks no more until the unit starts again. Root's
# own directory under /run: gone at reboot, masked in every game unit.
REFUSALS_DIR = "/run/left4me/rcon-refused"


def refused_in_this_run(name: str, invocation: str, refusals_dir: str | None = None) -> bool:
    """Whether instance ``name`` refused left4me's password in its unit's current run."""
    if not invocation:
        return False
    try:
        text = read_beneath(refusals_dir or REFUSALS_DIR, name, limit=256)
    except UnsafeFileError:
        return True  # something odd where only root writes: do not risk another login
    return text is not None and text.strip() == invocation


def remember_refusal(name: str, invocation: str, refusals_dir: str | None = None) -> None:
    """Record that ``name`` refused the password in run ``invocation`` (best effort: a
    host where /run cannot be written still has the caller's own once-per-call rule)."""
    if not invocation:
        return
    refusals_dir = refusals_dir or REFUSALS_DIR
    try:
        os.makedirs(refusals_dir, mode=0o700, exist_ok=True)
        write_atomic(os.path.join(refusals_dir, name), invocation + "\n", 0o600)
    except OSError:
        pass


def not_asked_message(name: str) -> str:
    return (f"instance {name!r}: not sent: it refused left4me's RCON password earlier in this"
            " run, and srcds bans an address after a few refused logins (RCON and A2S both);"
            f" {AUTH_FAILED_MESSAGE}")


def no_password_message(name: str, instance_cfg: str) -> str:
    return (f"instance {name!r} has no RCON password (no rcon_password in {instance_cfg}):"
            " set rcon_password with left4me.l4d2.srcds_instance (left4me never uses one an"
            " overlay's cfg sets)")
