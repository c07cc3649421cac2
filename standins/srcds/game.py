"""The simulated server's state and its console commands (shared by cfg files and RCON)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from standins.srcds import gamedata
from standins.srcds.cfg import split_commands
from standins.srcds.cmdline import LaunchOptions
from standins.srcds.console import PrintedLine, say
from standins.srcds.players import Player, account_id_for, survivor_cast

DEFAULT_CVARS = {
    "hostname": "Left 4 Dead 2",
    "sv_password": "",
    "rcon_password": "",
    "sv_tags": "",
    "sv_maxplayers": "-1",
    "sv_rcon_maxfailures": "10",
    "sv_rcon_banpenalty": "0",
    "sv_rcon_minfailures": "5",
    "sv_rcon_minfailuretime": "30",
    "mp_gamemode": "coop",
    "z_difficulty": "Normal",
    "sv_cheats": "0",
    "sv_lan": "0",
    "sv_region": "255",
    "sv_steamgroup": "",
    "sv_allow_lobby_connect_only": "1",
    "sv_consistency": "1",
    "motd_enabled": "1",
    # The cfg srcds runs at every map load (the game's rules exec it); server.cfg by default.
    "servercfgfile": "server.cfg",
    # The engine's port cvars (net_ws.cpp): the client socket's and SourceTV's ports, set
    # with +clientport / +tv_port before the sockets open (standins/srcds/net.py).
    "clientport": "27005",
    "tv_port": "27020",
}
# Never reported through A2S_RULES: secrets, as srcds hides FCVAR_PROTECTED values.
PROTECTED_CVARS = frozenset({"rcon_password", "sv_password"})
MAX_EXEC_DEPTH = 32  # srcds stops runaway exec loops; so do we.


@dataclass
class InfoSnapshot:
    """What A2S_INFO reports, captured under the lock."""

    hostname: str
    map_name: str
    players: int
    max_players: int
    password_protected: bool
    tags: str
    version: str


class GameServer:
    def __init__(self, options: LaunchOptions, game_root: Path) -> None:
        self.options = options
        self.game_dir = game_root / options.game
        self.lock = threading.RLock()
        self.stop_requested = threading.Event()
        self.exit_code = 0
        self.cvars: dict[str, str] = dict(DEFAULT_CVARS)
        self.cvars["maxplayers"] = str(options.maxplayers or 8)
        self.map_name: str | None = None
        self.players: list[Player] = []  # humans; A2S reports these
        self.bots: list[Player] = []  # survivor bots; only `status` and `users` show them
        self._kicked_survivors: set[str] = set()  # kicked bots stay gone for the map
        self._next_userid = 2
        self.version = gamedata.read_version(self.game_dir)
        # The engine's main loop answers A2S and RCON between frames: while it loads a map
        # (map_load_seconds) or is stuck (hang: a plugin's endless loop) nothing is answered;
        # queries and commands wait in the sockets' buffers, as they do for srcds.
        self.frames_running = threading.Event()
        self.frames_running.set()
        self.hung = False
        self.map_load_seconds = options.map_load_seconds
        self._commands: dict[str, Callable[[list[str]], list[str]]] = {
            "status": self._cmd_status,
            "users": self._cmd_users,
            "changelevel": self._cmd_changelevel,
            "map": self._cmd_map,
            "sm": self._cmd_sourcemod,
            "say": self._cmd_say,
            "kick": self._cmd_kick,
            "kickid": self._cmd_kick,
            "quit": self._cmd_quit,
            "exit": self._cmd_quit,
            "exec": self._cmd_exec,
            "echo": lambda args: [" ".join(args)],
            "sim_addplayer": self._cmd_sim_addplayer,
            "sim_removeplayer": self._cmd_sim_removeplayer,
            "sim_addons": self._cmd_sim_addons,
            "sim_burst": self._cmd_sim_burst,
            "sim_hang": self._cmd_sim_hang,
            "sim_map_load_seconds": self._cmd_sim_map_load_seconds,
            "addip": self._cmd_addip,
            "removeip": self._cmd_removeip,
            "listip": self._cmd_listip,
            "writeip": self._cmd_writeip,
            "banid": self._cmd_banid,
            "writeid": self._cmd_writeid,
        }
        # The engine's IP filter (sv_filter.cpp): address -> monotonic end, inf = permanent,
        # with the minutes it was given (writeip keeps only the permanent ones).
        self.ip_filters: dict[str, tuple[float, float]] = {}
        self.id_filters: dict[str, float] = {}  # banid: SteamID -> minutes (0 = permanent)

    # ----- command execution -------------------------------------------------------------
    def execute_text(self, text: str, *, from_cfg: bool = False, depth: int = 0) -> list[str]:
        output: list[str] = []
        for tokens in split_commands(text):
            output.extend(self.execute(tokens, from_cfg=from_cfg, depth=depth))
        return output

    def execute(self, tokens: list[str], *, from_cfg: bool = False, depth: int = 0) -> list[str]:
        name, args = tokens[0].lower(), tokens[1:]
        with self.lock:
            if name == "exec":
                return self._exec_file(args, depth)
            if name in self._commands:
                return self._commands[name](args)
            if name in self.cvars or (from_cfg and args):
                # cfg files may set plugin cvars we do not know; accept them as srcds+plugin would.
                return self._cvar(name, args)
            return [f'Unknown command "{tokens[0]}"']

    def _cvar(self, name: str, args: list[str]) -> list[str]:
        if not args:
            return [f'"{name}" = "{self.cvars[name]}"']
        self.cvars[name] = " ".join(args)
        return []

    def cvar(self, name: str) -> str:
        with self.lock:
            return self.cvars.get(name, "")

    def cvar_int(self, name: str, default: int) -> int:
        try:
            return int(float(self.cvar(name)))
        except ValueError:
            return default

    # ----- config files ------------------------------------------------------------------
    def _exec_file(self, args: list[str], depth: int) -> list[str]:
        if not args:
            return ["exec <filename>: execute a script file"]
        name = args[0] if args[0].endswith(".cfg") else f"{args[0]}.cfg"
        path = self.game_dir / "cfg" / name
        if depth >= MAX_EXEC_DEPTH or not path.is_file():
            return [f"exec: couldn't exec {args[0]}"]
        text = path.read_text(errors="replace")
        return self.execute_text(text, from_cfg=True, depth=depth + 1)

    def _cmd_exec(self, args: list[str]) -> list[str]:
        return self._exec_file(args, 0)

    def exec_server_cfg(self) -> None:
        """srcds executes ``servercfgfile`` (server.cfg unless set) on every map load; its
        output goes to the console."""
        cfg = self.cvars["servercfgfile"]
        if not cfg:
            return
        say(f"Executing dedicated server config file {cfg}")
        for line in self._exec_file([cfg], 0):
            say(line)

    # ----- maps --------------------------------------------------------------------------
    def load_map(self, name: str, *, in_background: bool = False) -> bool:
        """Load a map: at once, or (map_load_seconds) with the main loop busy that long, in
        the caller's thread (at start, before the query thread runs) or `in_background`
        (changelevel/map: the command's reply goes out first, then the server falls silent)."""
        with self.lock:
            if not gamedata.map_exists(self.game_dir, name):
                say(f"map load failed: {name} not found or invalid")
                return False
            say("---- Host_NewGame ----")
            seconds = self.map_load_seconds
            if seconds <= 0:
                self._finish_load(name)
                return True
            self.frames_running.clear()
        if in_background:
            threading.Thread(target=self._slow_load, args=(name, seconds), daemon=True).start()
        else:
            self._slow_load(name, seconds)
        return True

    def _slow_load(self, name: str, seconds: float) -> None:
        if self.stop_requested.wait(seconds):
            return
        with self.lock:
            self._finish_load(name)
            if not self.hung:
                self.frames_running.set()

    def hang(self) -> None:
        """Stop running frames for good (a plugin's endless loop): the process lives, its
        sockets stay bound, and nothing answers A2S or RCON until it is killed."""
        with self.lock:
            self.hung = True
            self.frames_running.clear()

    def _finish_load(self, name: str) -> None:
        """The load's second half (at its end): the new map, its team, server.cfg, add-ons."""
        with self.lock:
            self.map_name = name
            # A new map brings a fresh survivor team (and its cast); humans pick characters again.
            self.bots.clear()
            self._kicked_survivors.clear()
            for player in self.players:
                player.character = None
            self._staff_survivors()
            self.exec_server_cfg()
            self._announce_addons()
            say(f"Map {name} loaded ({self.player_count()} players stay connected)")

    def _announce_addons(self) -> None:
        scan = gamedata.scan_addons(self.game_dir)
        for name in scan.loaded:
            say(f"Loaded add-on: addons/{name}")
        for name in scan.missing:
            say(f"Missing add-on: addons/{name} (file not found)")
        for name in scan.invalid:
            say(f"Skipping add-on addons/{name}: not a valid VPK")

    def _cmd_changelevel(self, args: list[str]) -> list[str]:
        if not args:
            return ["changelevel <mapname>: changes the current map"]
        if not gamedata.map_exists(self.game_dir, args[0]):
            return [f"changelevel failed: {args[0]} not found"]
        self.load_map(args[0], in_background=True)
        return []

    def _cmd_map(self, args: list[str]) -> list[str]:
        if not args:
            return [f"Current map: {self.map_name or ''}"]
        if not gamedata.map_exists(self.game_dir, args[0]):
            return [f"map load failed: {args[0]} not found or invalid"]
        self.load_map(args[0], in_background=True)
        return []

    def _cmd_sim_map_load_seconds(self, args: list[str]) -> list[str]:
        """`sim_map_load_seconds [S]`: how long each later map load keeps the server silent."""
        if args:
            try:
                seconds = float(args[0])
            except ValueError:
                seconds = -1.0
            if seconds < 0:
                return ["sim_map_load_seconds <seconds>: 0 or more  (stand-in only)"]
            self.map_load_seconds = seconds
        return [f'"sim_map_load_seconds" = "{self.map_load_seconds:g}"']

    def _cmd_sim_hang(self, args: list[str]) -> list[str]:
        self.hang()
        return []

    # ----- players -----------------------------------------------------------------------
    def player_count(self) -> int:
        with self.lock:
            return len(self.players)

    def max_players(self) -> int:
        override = self.cvar_int("sv_maxplayers", -1)
        return override if override >= 0 else self.cvar_int("maxplayers", 8)

    def add_player(self, name: str, ping: int = 50, connected_seconds: float = 0,
                   pending: bool = False) -> Player:
        with self.lock:
            userid = self._take_userid()
            address = f"127.0.0.{2 + userid % 250}:27005"
            player = Player(userid, name, account_id_for(name), address, ping, pending=pending)
            player.joined_at = time.monotonic() - connected_seconds
            player.slot = self._free_slot()
            self.players.append(player)
            self._staff_survivors()
        say(f'Client "{name}" connected ({address}).')
        return player

    def find_player(self, selector: str, *, bots: bool = True) -> Player | None:
        """By `#userid` or exact name; humans first, so a human named "Coach" wins."""
        with self.lock:
            candidates = self.players + (self.bots if bots else [])
            if selector.startswith("#") and selector[1:].isdigit():
                wanted = int(selector[1:])
                return next((p for p in candidates if p.userid == wanted), None)
            return next((p for p in candidates if p.name == selector), None)

    def remove_player(self, player: Player, reason: str) -> None:
        with self.lock:
            if player.bot:
                if player in self.bots:
                    self.bots.remove(player)
                    self._kicked_survivors.add(player.name)
            elif player in self.players:
                self.players.remove(player)
                self._staff_survivors()
        say(f"Dropped {player.name} from server ({reason})")

    def _take_userid(self) -> int:
        # srcds hands out user ids in sequence to every client, bots included, never reusing one.
        userid = self._next_userid
        self._next_userid += 1
        return userid

    def _free_slot(self) -> int:
        used = {client.slot for client in self.players + self.bots}
        return next(slot for slot in range(1, len(used) + 2) if slot not in used)

    def _staff_survivors(self) -> None:
        """Keep four survivors: a joining human takes over a bot's character, a leaving one
        hands it back to a new bot. With no humans left the server hibernates and L4D2 drops
        every bot, so an idle server lists none (as a real empty dedicated server does)."""
        if not self.players:
            self.bots.clear()
            return
        cast = survivor_cast(self.map_name or "")
        for player in self.players:
            if player.character is not None:
                continue
            if self.bots:
                player.character = self.bots.pop(0).character
                continue
            played = {p.character for p in self.players}
            player.character = next((name for name in cast if name not in played), None)
        staffed = {p.character for p in self.players + self.bots} | self._kicked_survivors
        for name in cast:
            if name not in staffed:
                bot = Player(self._take_userid(), name, 0, "", 0, character=name, bot=True)
                bot.slot = self._free_slot()
                self.bots.append(bot)

    def _cmd_kick(self, args: list[str]) -> list[str]:
        if not args:
            return ["Usage:  kick < name > | < #userid >"]
        player = self.find_player(" ".join(args))
        if player is None:
            return [f'Can\'t kick "{" ".join(args)}", no such player']
        self.remove_player(player, "Kicked from server")
        return [f"Kicked {player.name}"]

    def _cmd_sim_addplayer(self, args: list[str]) -> list[str]:
        if not args:
            return ["sim_addplayer <name> [ping [connected_seconds [pending]]]  (stand-in only)"]
        ping = int(args[1]) if len(args) > 1 and args[1].isdigit() else 50
        connected = int(args[2]) if len(args) > 2 and args[2].isdigit() else 0
        pending = len(args) > 3 and args[3].lower() == "pending"
        player = self.add_player(args[0], ping, connected, pending)
        return [f'Added "{player.name}" as #{player.userid} ({player.steam2_id})']

    def _cmd_sim_removeplayer(self, args: list[str]) -> list[str]:
        player = self.find_player(" ".join(args), bots=False) if args else None
        if player is None:
            return ["sim_removeplayer <name>|#userid: no such player  (stand-in only)"]
        self.remove_player(player, "Disconnect by user.")
        return [f"Removed {player.name}"]

    # ----- bans (engine/sv_filter.cpp of the Source engine) -----------------------------
    def is_ip_banned(self, ip: str) -> bool:
        """Filter_ShouldDiscard: a banned address gets nothing but "Banned by server" on UDP
        and is not accepted on RCON's TCP port; a timed ban ends by itself."""
        with self.lock:
            entry = self.ip_filters.get(ip)
            if entry is None:
                return False
            if time.monotonic() >= entry[0]:
                del self.ip_filters[ip]
                return False
            return True

    def _cmd_addip(self, args: list[str]) -> list[str]:
        if len(args) != 2:
            return ["Usage:  addip < minutes > < ipaddress >", "Use 0 minutes for permanent"]
        try:
            minutes = max(float(args[0]), 0.0)
        except ValueError:
            minutes = 0.0
        minutes = 0.0 if minutes < 0.01 else minutes
        until = time.monotonic() + 60 * minutes if minutes else float("inf")
        self.ip_filters[args[1]] = (until, minutes)
        return []

    def _cmd_removeip(self, args: list[str]) -> list[str]:
        if not args:
            return ["Usage:  removeip < slot | ipaddress >"]
        if self.ip_filters.pop(args[0], None) is None:
            return [f"removeip:  couldn't find {args[0]}"]
        return [f"removeip:  filter removed for {args[0]}"]

    def _cmd_listip(self, args: list[str]) -> list[str]:
        if not self.ip_filters:
            return ["IP filter list: empty"]
        count = len(self.ip_filters)
        lines = [f"IP filter list: {count} {'entry' if count == 1 else 'entries'}"]
        for index, (ip, (_until, minutes)) in enumerate(self.ip_filters.items(), 1):
            lines.append(f"{index} {ip} : {f'{minutes:.3f} min' if minutes else 'permanent'}")
        return lines

    def _cmd_banid(self, args: list[str]) -> list[str]:
        if len(args) < 2:
            return ["Usage:  banid < minutes > < userid | uniqueid > { kick }",
                    "Use 0 minutes for permanent"]
        try:
            minutes = max(float(args[0]), 0.0)
        except ValueError:
            minutes = 0.0
        target = args[1]
        player = self.find_player(f"#{target}" if target.isdigit() else target, bots=False)
        steam_id = player.steam2_id if player else target
        self.id_filters[steam_id] = 0.0 if minutes < 0.01 else minutes
        return []

    def _write_ban_file(self, name: str, lines: list[str]) -> list[str]:
        """writeid/writeip: `Writing cfg/NAME.`, then the file opened "wb" in the game dir
        (through the overlay: the directory must let the game create it), or `Couldn't open`."""
        path = f"cfg/{name}"
        output = [f"Writing {path}."]
        try:
            with open(self.game_dir / path, "wb") as handle:
                handle.write("".join(f"{line}\r\n" for line in lines).encode())
        except OSError:
            output.append(f"Couldn't open {path}")
        return output

    def _cmd_writeip(self, args: list[str]) -> list[str]:
        permanent = [ip for ip, (_until, minutes) in self.ip_filters.items() if not minutes]
        return self._write_ban_file("banned_ip.cfg", [f"addip 0 {ip}" for ip in permanent])

    def _cmd_writeid(self, args: list[str]) -> list[str]:
        permanent = [sid for sid, minutes in self.id_filters.items() if not minutes]
        return self._write_ban_file("banned_user.cfg", [f"banid 0 {sid}" for sid in permanent])

    def _cmd_sim_burst(self, args: list[str]) -> list[str]:
        """`sim_burst N`: N console lines at once, as a busy server with plugins (map load,
        SourceMod, a chatty plugin) prints them; each numbered so a reader can count them."""
        count = int(args[0]) if args and args[0].isdigit() else 1000
        for number in range(1, count + 1):
            say(f"sim_burst line {number}/{count}")
        return [f"sim_burst: printed {count} lines"]

    # ----- reports -----------------------------------------------------------------------
    def clients_by_slot(self) -> list[Player]:
        """Every connected client, humans and bots, in slot order as srcds walks them."""
        with self.lock:
            return sorted(self.players + self.bots, key=lambda client: client.slot)

    def _cmd_status(self, args: list[str]) -> list[str]:
        address = f"{self.options.bind_ip}:{self.options.port}"
        humans, bots = len(self.players), len(self.bots)
        hibernation = "not hibernating" if humans else "hibernating"
        secure = "insecure" if self.options.insecure else "secure"
        lines: list[str] = [
            f"hostname: {self.cvars['hostname']}",
            # The empty secure-reason column leaves two spaces before the Steam universe.
            f"version : {self.version.patch} {self.version.server} {secure}  (unknown)",
            f"udp/ip  : {address} [ public {address} ]",
            "os      : Linux Dedicated",
            f"map     : {self.map_name or ''}",
            f"players : {humans} humans, {bots} bots ({self.max_players()} max) "
            f"({hibernation}) (unreserved)",
            "",
            # Over RCON srcds adds the address column, with its own print call.
            PrintedLine("# userid name uniqueid connected ping loss state rate", " adr"),
        ]
        lines.extend(status_row(client) for client in self.clients_by_slot())
        lines.append("#end")
        return lines

    def _cmd_users(self, args: list[str]) -> list[str]:
        # Every client, bots too, by 0-based slot index.
        clients = self.clients_by_slot()
        lines = ['<slot:userid:"name">']
        lines.extend(f'{c.slot - 1}:{c.userid}:"{c.name}"' for c in clients)
        lines.append(f"{len(clients)} users")
        return lines

    def _cmd_say(self, args: list[str]) -> list[str]:
        say(f"Console: {' '.join(args)}")
        return []

    def _cmd_quit(self, args: list[str]) -> list[str]:
        self.exit_code = 0
        self.stop_requested.set()
        return []

    def _cmd_sourcemod(self, args: list[str]) -> list[str]:
        sm_dir = gamedata.sourcemod_dir(self.game_dir)
        if sm_dir is None:
            return ['Unknown command "sm"']
        topic = " ".join(args[:2]).lower()
        if topic == "plugins list":
            plugins = gamedata.sourcemod_plugins(sm_dir)
            lines = [f"[SM] Listing {len(plugins)} plugins:"]
            lines += [f'  {i:02d} "{name}" (1.0) by unknown' for i, name in enumerate(plugins, 1)]
            return lines
        if topic == "exts list":
            extensions = gamedata.sourcemod_extensions(sm_dir)
            lines = [f"[SM] Displaying {len(extensions)} extensions:"]
            lines += [f"[{i:02d}] {name} (1.0)" for i, name in enumerate(extensions, 1)]
            return lines
        return ["SourceMod Menu:", "Usage: sm <command> [arguments]"]

    def _cmd_sim_addons(self, args: list[str]) -> list[str]:
        scan = gamedata.scan_addons(self.game_dir)
        lines = [f"loaded {name}" for name in scan.loaded]
        lines += [f"missing {name}" for name in scan.missing]
        lines += [f"invalid {name}" for name in scan.invalid]
        return lines

    def info_snapshot(self) -> InfoSnapshot:
        with self.lock:
            return InfoSnapshot(
                hostname=self.cvars["hostname"],
                map_name=self.map_name or "",
                players=len(self.players),
                max_players=self.max_players(),
                password_protected=bool(self.cvars["sv_password"]),
                tags=self.cvars["sv_tags"],
                version=self.version.patch,
            )

    def public_rules(self) -> dict[str, str]:
        with self.lock:
            return {k: v for k, v in sorted(self.cvars.items()) if k not in PROTECTED_CVARS}

    def player_rows(self) -> list[tuple[str, int, float]]:
        with self.lock:
            return [(p.name, p.score, p.connected_seconds) for p in self.players]


def format_duration(seconds: float) -> str:
    """srcds's COM_FormatSeconds: `MM:SS`, or `%2i:MM:SS` once an hour has passed."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:2d}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def status_row(client: Player) -> str:
    """One `status` row in L4D2's layout (its engine branch added the slot column):
    `# %2i %i "name" id time ping loss state rate` then ` adr` for humans;
    `#%2i "name" BOT active` for bots, which have no network channel to report."""
    if client.bot:
        return f'#{client.userid:2d} "{client.name}" BOT active'
    return PrintedLine(
        f'# {client.userid:2d} {client.slot} "{client.name}" {client.steam2_id} '
        f"{format_duration(client.connected_seconds)} {client.ping} {client.loss} active 30000",
        f" {client.address}",
    )
