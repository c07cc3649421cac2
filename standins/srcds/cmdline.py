"""The srcds command line, parsed the way srcds tolerates it, plus the stand-in's switches."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

# -options that take a value; every other -option is a bare flag (unknown ones are ignored).
_VALUED_OPTIONS = {
    "-game",
    "-port",
    "-tickrate",
    "-maxplayers",
    "-ip",
    "-sim_seed",
    "-sim_players",
    "-sim_crash_after",
    "-sim_hang_after",
    "-sim_map_load_seconds",
    "--seed",
    "--player-schedule",
    "--bind",
}
# +commands consumed as launch settings instead of being executed as console commands.
_LAUNCH_COMMANDS = {"+ip", "+map", "+maxplayers"}


@dataclass
class FaultSwitches:
    """Failure modes for tests; each has an env var and a -sim_* argument (README)."""

    crash_after: float | None = None
    hang_after: float | None = None  # seconds after start; then neither A2S nor RCON answers
    crash_at_start: bool = False
    bind_fail: bool = False
    hang_at_start: bool = False
    tsc_unstable: bool = False


@dataclass
class LaunchOptions:
    game: str = "left4dead2"
    port: int = 27015
    bind_ip: str = "127.0.0.1"
    map_name: str = "c1m1_hotel"
    maxplayers: int | None = None
    tickrate: int = 30
    insecure: bool = False
    nohltv: bool = False
    strict_port_bind: bool = False
    # Console commands from the command line (+hostname x, +exec y), in order.
    console_commands: list[list[str]] = field(default_factory=list)
    seed: int = 0
    player_schedule: str = "off"
    # Seconds every map load keeps the main loop busy (the first, and each changelevel/map).
    map_load_seconds: float = 0.0
    faults: FaultSwitches = field(default_factory=FaultSwitches)


def _is_option(token: str) -> bool:
    # "-1" is a value, not an option; srcds options always start with a letter or a dash.
    return len(token) > 1 and token[0] in "+-" and not token[1].isdigit()


def _split_plus_commands(argv: list[str]) -> tuple[list[str], list[list[str]]]:
    """Separate -options (with values) from +commands (each with its arguments)."""
    dash_tokens: list[str] = []
    plus_commands: list[list[str]] = []
    index = 0
    while index < len(argv):
        token = argv[index]
        if token.startswith("+") and _is_option(token):
            command = [token]
            index += 1
            while index < len(argv) and not _is_option(argv[index]):
                command.append(argv[index])
                index += 1
            plus_commands.append(command)
            continue
        dash_tokens.append(token)
        index += 1
    return dash_tokens, plus_commands


def _apply_dash_options(options: LaunchOptions, tokens: list[str]) -> None:
    index = 0
    while index < len(tokens):
        name = tokens[index]
        has_value = name in _VALUED_OPTIONS and index + 1 < len(tokens)
        value = tokens[index + 1] if has_value else ""
        _apply_dash_option(options, name, value)
        index += 2 if has_value else 1


# Options that only switch something on: on the launch options, and the stand-in's faults.
_SWITCHES = {"-insecure": "insecure", "-nohltv": "nohltv", "-strictportbind": "strict_port_bind"}
_FAULT_SWITCHES = {"-sim_crash_at_start": "crash_at_start", "-sim_bind_fail": "bind_fail",
                   "-sim_hang": "hang_at_start", "-sim_tsc_unstable": "tsc_unstable"}


def _apply_dash_option(options: LaunchOptions, name: str, value: str) -> None:
    if name in _SWITCHES:
        setattr(options, _SWITCHES[name], True)
    elif name in _FAULT_SWITCHES:
        setattr(options.faults, _FAULT_SWITCHES[name], True)
    else:
        _apply_valued_option(options, name, value)


def _apply_valued_option(options: LaunchOptions, name: str, value: str) -> None:
    match name:
        case "-game":
            options.game = value
        case "-port":
            options.port = int(value)
        case "-tickrate":
            options.tickrate = int(value)
        case "-maxplayers":
            options.maxplayers = int(value)
        case "-ip" | "--bind":
            options.bind_ip = value
        case "-sim_seed" | "--seed":
            options.seed = int(value)
        case "-sim_players" | "--player-schedule":
            options.player_schedule = value
        case "-sim_crash_after":
            options.faults.crash_after = float(value)
        case "-sim_hang_after":
            options.faults.hang_after = float(value)
        case "-sim_map_load_seconds":
            options.map_load_seconds = float(value)
        case _:
            pass  # -usercon, -console, -nomaster, -norestart, -clientport, unknown: like srcds


def _apply_plus_commands(options: LaunchOptions, commands: list[list[str]]) -> None:
    for command in commands:
        name, args = command[0].lower(), command[1:]
        if name in _LAUNCH_COMMANDS and args:
            _apply_launch_command(options, name, args[0])
        elif name not in _LAUNCH_COMMANDS:
            options.console_commands.append([name[1:], *args])


def _apply_launch_command(options: LaunchOptions, name: str, value: str) -> None:
    if name == "+ip":
        options.bind_ip = value
    elif name == "+map":
        options.map_name = value
    else:
        options.maxplayers = int(value)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _apply_environment(options: LaunchOptions) -> None:
    """Environment switches, so a systemd drop-in can inject a fault without touching argv."""
    env = os.environ
    faults = options.faults
    if "SRCDS_SIM_SEED" in env:
        options.seed = int(env["SRCDS_SIM_SEED"])
    if "SRCDS_SIM_PLAYERS" in env:
        options.player_schedule = env["SRCDS_SIM_PLAYERS"]
    if env.get("SRCDS_SIM_CRASH_AFTER"):
        faults.crash_after = float(env["SRCDS_SIM_CRASH_AFTER"])
    if env.get("SRCDS_SIM_HANG_AFTER"):
        faults.hang_after = float(env["SRCDS_SIM_HANG_AFTER"])
    if env.get("SRCDS_SIM_MAP_LOAD_SECONDS"):
        options.map_load_seconds = float(env["SRCDS_SIM_MAP_LOAD_SECONDS"])
    faults.crash_at_start = faults.crash_at_start or _env_flag("SRCDS_SIM_CRASH_AT_START")
    faults.bind_fail = faults.bind_fail or _env_flag("SRCDS_SIM_BIND_FAIL")
    faults.hang_at_start = faults.hang_at_start or _env_flag("SRCDS_SIM_HANG_AT_START")
    faults.tsc_unstable = faults.tsc_unstable or _env_flag("SRCDS_SIM_TSC_UNSTABLE")


def parse_command_line(argv: list[str]) -> LaunchOptions:
    """Parse like srcds: -options anywhere, +commands run later in command-line order."""
    options = LaunchOptions()
    _apply_environment(options)
    dash_tokens, plus_commands = _split_plus_commands(argv)
    _apply_dash_options(options, dash_tokens)
    _apply_plus_commands(options, plus_commands)
    return options
