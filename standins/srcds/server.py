"""Entry point: start-up sequence, sockets, fault switches, and clean shutdown."""

from __future__ import annotations

import os
import random
import resource
import signal
import sys
import threading
import time
from pathlib import Path

from standins.srcds.a2s import QueryResponder, anonymous_server_steamid, serve_queries
from standins.srcds.cmdline import LaunchOptions, parse_command_line
from standins.srcds.console import say
from standins.srcds.cpu import EXIT_NO_CPU_FREQUENCY, detect
from standins.srcds.game import GameServer
from standins.srcds.net import FatalBind, Sockets, open_sockets
from standins.srcds.players import parse_schedule, random_name
from standins.srcds.rcon import serve_rcon

EXIT_BIND_FAILED = 1
# Grace period so an RCON `quit` reply leaves the socket before the process ends.
SHUTDOWN_GRACE = 0.2


def _crash() -> None:
    """Die like srcds_linux on a segfault: killed by SIGSEGV (shell status 139), no core file."""
    say("Segmentation fault")
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signal.SIGSEGV, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGSEGV)


def _print_banner(options: LaunchOptions) -> None:
    say("Console initialized.")
    say("Using breakpad crash handler")
    say("Setting breakpad minidump AppID = 222860")
    say('Game.dll loaded for "Left 4 Dead 2"')
    say(f"Stand-in srcds (tickrate {options.tickrate}) from {Path.cwd()}")


def _open_sockets(server: GameServer) -> Sockets | None:
    """The engine's sockets (standins/srcds/net.py): server, client, SourceTV."""
    options = server.options
    try:
        return open_sockets(
            options.bind_ip, options.port, server.cvar_int("clientport", 27005),
            None if options.nohltv else server.cvar_int("tv_port", 27020),
            strict=options.strict_port_bind, simulate_refusal=options.faults.bind_fail)
    except FatalBind:
        return None


def _detect_cpu(options: LaunchOptions) -> bool:
    """tier0's CPU speed detection (standins/srcds/cpu.py); False where tier0 gives up."""
    found = detect(options.faults.tsc_unstable)
    if found is None:
        say("Unable to determine CPU Frequency")
        return False
    say(f"CPU: {found.mhz} MHz ({found.source}), {found.logical} logical processor(s)")
    return True


def _announce_steam(options: LaunchOptions) -> None:
    steamid = anonymous_server_steamid(options.port)
    say("Connection to Steam servers successful.")
    say(f"   Public IP is {options.bind_ip}.")
    say(f"Assigned anonymous gameserver Steam ID [A:1:{steamid & 0xFFFFFFFF}:1].")
    if not options.insecure:
        say("VAC secure mode is activated.")


def _simulate_players(server: GameServer) -> None:
    """Seeded joins and leaves, so player tracking has data without real clients."""
    schedule = parse_schedule(server.options.player_schedule)
    if schedule is None:
        return
    rng = random.Random(server.options.seed)
    departures: dict[str, float] = {}
    clock = 0.0
    next_join = rng.expovariate(1 / schedule.mean_join_interval)
    while not server.stop_requested.wait(min(1.0, max(0.05, next_join - clock))):
        clock += min(1.0, max(0.05, next_join - clock))
        if not server.frames_running.is_set():
            continue  # nobody joins or leaves a server that is loading or hung
        for name, leave_at in list(departures.items()):
            player = server.find_player(name, bots=False)
            if clock >= leave_at:
                departures.pop(name)
                if player is not None:
                    server.remove_player(player, "Disconnect by user.")
        if clock >= next_join:
            next_join = clock + rng.expovariate(1 / schedule.mean_join_interval)
            if len(departures) < min(schedule.max_players, server.max_players()):
                taken = {p.name for p in server.players}
                player = server.add_player(random_name(rng, taken), rng.randint(20, 150))
                departures[player.name] = clock + rng.uniform(schedule.min_stay, schedule.max_stay)


def _start_thread(target, *args) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def _install_signal_handlers(server: GameServer) -> None:
    def request_stop(signum: int, _frame: object) -> None:
        server.exit_code = 0
        server.stop_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)


def _wait_for_stop(server: GameServer, crash_after: float | None,
                   hang_after: float | None) -> None:
    """Until asked to stop; on the way, hang and crash at their seconds after this call."""
    started = time.monotonic()
    faults = [(after, action) for after, action in ((hang_after, server.hang),
                                                    (crash_after, _crash)) if after is not None]
    for after, action in sorted(faults, key=lambda fault: fault[0]):
        if server.stop_requested.wait(max(0.0, started + after - time.monotonic())):
            return
        action()  # a hang leaves the process alive and bound, silent on A2S and RCON
    server.stop_requested.wait()


def run(options: LaunchOptions) -> int:
    server = GameServer(options, Path.cwd())
    _install_signal_handlers(server)
    _print_banner(options)
    if options.faults.crash_at_start:
        _crash()
    if not _detect_cpu(options):
        return EXIT_NO_CPU_FREQUENCY
    if options.faults.hang_at_start:
        say("Waiting for Steam client initialisation...")  # and never gets further
        server.stop_requested.wait()
        return 0
    for command in options.console_commands:
        for line in server.execute(command):
            say(line)
    sockets = _open_sockets(server)
    if sockets is None:
        return EXIT_BIND_FAILED
    udp, tcp = sockets.udp, sockets.tcp
    options.port = sockets.port  # where the engine really bound (a taken port moves it)
    say(f"Network: IP {options.bind_ip}, mode MP, dedicated Yes,"
        f" ports {sockets.port} SV / {sockets.client_port} CL")
    server.load_map(options.map_name)
    _announce_steam(options)
    _start_thread(serve_queries, QueryResponder(server, udp), server.stop_requested)
    _start_thread(serve_rcon, server, tcp)
    _start_thread(_simulate_players, server)
    _wait_for_stop(server, options.faults.crash_after, options.faults.hang_after)
    server.stop_requested.wait(SHUTDOWN_GRACE)
    say("Server shutting down.")
    sockets.close()
    return server.exit_code


def main(argv: list[str]) -> int:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    return run(parse_command_line(argv))
