"""The sockets srcds opens at start-up, and how it fails when a bind is refused.

Modelled on the Source engine's `NET_OpenSockets` (engine/net_ws.cpp; public copies of the
2013-era engine, e.g. nillerusr/source-engine, read for behaviour only), with the console
text real servers print:

- **server** (`-port`, default 27015): UDP for the game and A2S, TCP for RCON on the same
  number. A port in use (EADDRINUSE) moves it to the next, up to 10 tries
  (`PORT_TRY_MAX`), warning `WARNING: Port N was unavailable - bound to port M instead`,
  unless `-strictportbind` (LinuxGSM passes it for L4D2), which quits instead. Any other
  error (`EPERM` from systemd's `SocketBindDeny=`, `EADDRNOTAVAIL` for a wrong `+ip`) is not
  retried: `WARNING: NNET_OpenSocket: bind: <strerror>` (the engine's own typo, as in the
  capture in GameServerManagers/LinuxGSM#1126) and the server quits with
  `Couldn't allocate any server IP port`.
- **client** (cvar `clientport`, `+clientport N`, default 27005): UDP, opened by every
  dedicated server too ("ports 27015 SV / 27005 CL" in the `Network:` line of real logs;
  LinuxGSM lists it as "Client OUTBOUND udp" and passes `+clientport`; two servers on one
  host need two, LinuxGSM#639). Same tries as above; when they fail it tries any port
  (port 0). systemd's socket-bind BPF program matches the port as given, 0 included
  (systemd src/core/bpf/socket_bind/socket-bind.bpf.c), so under `SocketBindDeny=any`
  that fails too and the server quits with `Couldn't allocate any client IP port` (the
  message seen from Valve's engines, ValveSoftware/Dota-2#402). `-clientport` is not a
  documented srcds option; the stand-in ignores it.
- **hltv** (cvar `tv_port`, default 27020): UDP for SourceTV, opened unless `-nohltv`
  whether or not `tv_enable` is set (a Source 2013 server was seen holding UDP
  27015/27005/27020 and TCP 27015 with SourceTV off), fatal on failure
  (`Couldn't allocate any hltv IP port`, GameServerManagers/LinuxGSM#2564, CS:GO). Valve
  lists no SourceTV for L4D2 and LinuxGSM sets no SourceTV port for it, so whether L4D2's
  engine opens this socket is unconfirmed; left4me passes `-nohltv` either way.

The stand-in exits 1 on a fatal bind, after the lines above.
"""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass

from standins.srcds.console import say

PORT_TRY_MAX = 10


class FatalBind(Exception):
    """The engine's Sys_Error: the server quits."""


@dataclass
class Sockets:
    udp: socket.socket
    tcp: socket.socket
    port: int
    client: socket.socket
    client_port: int
    hltv: socket.socket | None
    hltv_port: int | None

    def close(self) -> None:
        for sock in (self.udp, self.tcp, self.client, self.hltv):
            if sock is not None:
                sock.close()


def _bind_udp(ip: str, port: int, *, strict: bool) -> tuple[socket.socket, int] | None:
    """NET_OpenSocket: the port, then the next ones while they are in use."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tries = 1 if port == 0 else PORT_TRY_MAX
    for offset in range(tries):
        try:
            sock.bind((ip, port + offset))
        except OSError as error:
            if port == 0 or error.errno != errno.EADDRINUSE:
                say(f"WARNING: NNET_OpenSocket: bind: {os.strerror(error.errno or 0)}")
                sock.close()
                return None
            continue
        bound = sock.getsockname()[1]
        if offset:
            if strict:
                sock.close()
                say(f'ERROR: Port {port} was unavailable - quitting due to "-strictportbind"'
                    " command-line flag!")
                raise FatalBind(f"port {port} unavailable")
            say(f"WARNING: Port {port} was unavailable - bound to port {bound} instead")
        return sock, bound
    say("WARNING: UDP_OpenSocket: unable to bind socket")
    sock.close()
    return None


def _open(name: str, ip: str, port: int, *, strict: bool, try_any: bool
          ) -> tuple[socket.socket, int]:
    """OpenSocketInternal: fatal when no port could be had."""
    opened = _bind_udp(ip, port, strict=strict)
    if opened is None and try_any:
        opened = _bind_udp(ip, 0, strict=strict)
    if opened is None:
        say(f"Couldn't allocate any {name} IP port")
        raise FatalBind(name)
    return opened


def open_sockets(ip: str, port: int, client_port: int, hltv_port: int | None, *,
                 strict: bool, simulate_refusal: bool = False) -> Sockets:
    """The server, client and (unless -nohltv) SourceTV sockets, in the engine's order."""
    if simulate_refusal:  # SRCDS_SIM_BIND_FAIL: as a port taken past every try
        say(f"WARNING: NNET_OpenSocket: bind: {os.strerror(errno.EADDRINUSE)} (simulated)")
        say("Couldn't allocate any server IP port")
        raise FatalBind("server")
    udp, bound = _open("server", ip, port, strict=strict, try_any=False)
    opened: list[socket.socket] = [udp]
    try:
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        opened.append(tcp)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            tcp.bind((ip, bound))  # RCON listens on the game port's number
            tcp.listen(8)
        except OSError as error:
            say(f"WARNING: NET_OpenSocket: bind: {os.strerror(error.errno or 0)}")
            say("Couldn't allocate any server IP port")
            raise FatalBind("server") from error
        client, client_bound = _open("client", ip, client_port, strict=False, try_any=True)
        opened.append(client)
        hltv, hltv_bound = None, None
        if hltv_port is not None:
            hltv, hltv_bound = _open("hltv", ip, hltv_port, strict=False, try_any=False)
    except FatalBind:
        for sock in opened:
            sock.close()
        raise
    return Sockets(udp, tcp, bound, client, client_bound, hltv, hltv_bound)
