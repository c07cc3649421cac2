"""steamcmd's command grammar: `+command args...` processed in order, then `+quit`."""

from __future__ import annotations

import itertools
import os
import sys
import time
import zlib
from collections.abc import Iterable
from pathlib import Path

from standins.steamcmd import appinfo, install, workshop
from standins.steamcmd.bootstrap import bootstrap
from standins.steamcmd.settings import SimSettings, load_settings

# Exit codes as steamcmd returns them (see README for sources and certainty).
EXIT_OK = 0
EXIT_TIMED_OUT = 1  # also the bootstrapper's exit when it cannot update steamcmd
EXIT_LOGIN_FAILED = 5
EXIT_FOREIGN_HOME = 7  # the bootstrapper's exit when its directory is another user's
EXIT_APP_FAILED = 8
EXIT_WORKSHOP_FAILED = 10
CLIENT_VERSION = "1716584667"


class CommandFailed(Exception):
    def __init__(self, exit_code: int) -> None:
        super().__init__(exit_code)
        self.exit_code = exit_code


def out(line: str) -> None:
    print(line, flush=True)


def split_script(argv: list[str]) -> list[list[str]]:
    """`+a x y +b` → [[a, x, y], [b]]; tokens before the first + are ignored like steamcmd."""
    commands: list[list[str]] = []
    for token in argv:
        if token.startswith("+"):
            commands.append([token[1:]])
        elif commands:
            commands[-1].append(token)
    return commands


class Session:
    def __init__(self, settings: SimSettings) -> None:
        self.settings = settings
        self.install_dir: Path | None = None
        self.user: str | None = None
        self.platform = "linux"
        self.appinfo_asked: set[str] = set()  # apps app_info_print asked Steam for this run

    @property
    def root(self) -> Path:
        default = self.settings.steam_home / "steamapps" / "common" / install.APP_NAME
        return self.install_dir or default

    def run(self, command: list[str]) -> bool:
        """Execute one command; False means quit."""
        name, args = command[0], command[1:]
        handlers = {
            "force_install_dir": self._force_install_dir,
            "login": self._login,
            "app_update": self._app_update,
            "app_info_update": self._app_info_update,
            "app_info_print": self._app_info_print,
            "workshop_download_item": self._workshop_download_item,
            "runscript": self._runscript,
        }
        if name.lower() in {"quit", "exit"}:
            return False
        if name.startswith("@"):
            self._set_config(name, args)
        elif name.lower() in handlers:
            handlers[name.lower()](args)
        else:
            out(f"Command not found: {name}")
        return True

    def _set_config(self, name: str, args: list[str]) -> None:
        value = args[0] if args else ""
        if name.lower() == "@ssteamcmdforceplatformtype":
            self.platform = value.lower() or "linux"
        out(f'"{name}" = "{value}"')

    def _force_install_dir(self, args: list[str]) -> None:
        if self.user is not None:
            out("Please use force_install_dir before logon!")
        self.install_dir = Path(args[0]).expanduser().resolve() if args else None

    def _login(self, args: list[str]) -> None:
        user = args[0] if args else "anonymous"
        faults = self.settings.faults
        if user == "anonymous":
            out("Connecting anonymously to Steam Public...OK")
        else:
            account = 100_000_000 + zlib.crc32(user.encode()) % 900_000_000
            prefix = f"Logging in user '{user}' [U:1:{account}] to Steam Public..."
            if len(args) < 2 or "invalid_password" in faults:
                out(prefix + "FAILED (Invalid Password)")
                raise CommandFailed(EXIT_LOGIN_FAILED)
            if "two_factor" in faults:
                out("This account is protected by a Steam Guard mobile authenticator.")
                out(prefix + "FAILED (Two-factor code mismatch)")
                raise CommandFailed(EXIT_LOGIN_FAILED)
            out(prefix + "OK")
        out("Waiting for client config...OK")
        out("Waiting for user info...OK")
        self.user = user

    def _app_update(self, args: list[str]) -> None:
        app_id = args[0] if args else ""
        validate = "validate" in args
        beta = args[args.index("-beta") + 1] if "-beta" in args[:-1] else None
        if self.user is None:
            out("ERROR! Failed to request AppInfo update, not online or not logged in to Steam.")
            raise CommandFailed(EXIT_APP_FAILED)
        if "appinfo_timeout" in self.settings.faults:
            time.sleep(self.settings.delay)
            out("ERROR! Timed out waiting for AppInfo update.")
            raise CommandFailed(EXIT_TIMED_OUT)
        self._refuse_while_cache_cold(app_id)
        self._check_entitlement(app_id)
        appinfo.refresh(self.settings)  # app_update fetches the app's info first
        self._install(validate, beta)

    def _app_info_update(self, args: list[str]) -> None:
        """`app_info_update 1`: refresh the appinfo cache (needs a login)."""
        if self.user is None:
            out("ERROR! Failed to request AppInfo update, not online or not logged in to Steam.")
            return
        appinfo.refresh(self.settings)

    def _app_info_print(self, args: list[str]) -> None:
        """Print the cached info of an app; an app not cached is requested and printed by a
        later call (fault `appinfo_requesting`: the first call of each run says so even for a
        cached app, as steamcmd did from late 2024)."""
        app_id = args[0] if args else ""
        home = self.settings.steam_home
        if "appinfo_empty" in self.settings.faults and app_id == str(install.APP_ID):
            for line in appinfo.render(app_id, None):
                out(line)
            return
        cached = appinfo.read_cache(home) if app_id == str(install.APP_ID) else None
        first_ask = app_id not in self.appinfo_asked
        if cached is None or ("appinfo_requesting" in self.settings.faults and first_ask):
            out(f"No app info for AppID {app_id} found, requesting...")
            self.appinfo_asked.add(app_id)
            if self.user is not None and app_id == str(install.APP_ID) and cached is None:
                appinfo.refresh(self.settings)  # the answer lands in the cache afterwards
            return
        for line in appinfo.render(app_id, cached):
            out(line)

    def _refuse_while_cache_cold(self, app_id: str) -> None:
        """A new steamcmd home's appinfo cache is empty: the first requests lack the app's
        configuration. Counted in the home's appcache/, like the real cache fills there."""
        counter = self.settings.steam_home / "appcache" / "standin-cold-cache-refusals"
        refused = int(counter.read_text()) if counter.is_file() else 0
        if refused < self.settings.cold_cache:
            counter.parent.mkdir(parents=True, exist_ok=True)
            counter.write_text(str(refused + 1))
            out(f"ERROR! Failed to install app '{app_id}' (Missing configuration)")
            raise CommandFailed(EXIT_APP_FAILED)

    def _check_entitlement(self, app_id: str) -> None:
        owns = self.user == "anonymous" or self.user in self.settings.owners
        if app_id != str(install.APP_ID) or not owns:
            out(f"ERROR! Failed to install app '{app_id}' (No subscription)")
            raise CommandFailed(EXIT_APP_FAILED)
        state = install.read_state(self.root)
        windows_pass_done = install.DEPOT_WINDOWS in state.depots
        anonymous_linux = self.user == "anonymous" and self.platform != "windows"
        if anonymous_linux and not windows_pass_done:
            # The real anonymous licence only lists the Windows depots for 222860.
            refusal = self.settings.platform_refusal
            out(f"ERROR! Failed to install app '{install.APP_ID}' ({refusal})")
            raise CommandFailed(EXIT_APP_FAILED)

    def _install(self, validate: bool, beta: str | None) -> None:
        app = install.APP_ID
        state = install.read_state(self.root)
        platform_depot = (
            install.DEPOT_WINDOWS if self.platform == "windows" else install.DEPOT_LINUX
        )
        wanted = state.depots | {install.DEPOT_CONTENT, platform_depot}
        up_to_date = state.buildid == self.settings.buildid and wanted == state.depots
        if up_to_date and not validate:
            self._bundle_if_linux()
            out(f"Success! App '{app}' already up to date.")
            return
        self._progress(validate)
        plans = install.plans_for(self.platform, self.settings)
        previous = None
        if state.buildid is not None and not validate and wanted == state.depots:
            previous = install.plans_for(self.platform, _with_build(self.settings, state.buildid))
        install.lay_out(self.root, plans, previous)
        self._bundle_if_linux()
        if not up_to_date:
            install.write_manifest(self.root, self.settings, wanted, beta)
        out(f"Success! App '{app}' fully installed.")

    def _bundle_if_linux(self) -> None:
        if self.platform != "windows":
            install.bundle_package(self.root / "bin")

    def _progress(self, validate: bool) -> None:
        app = install.APP_ID
        total = self.settings.content_bytes
        out(" Update state (0x3) reconfiguring, progress: 0.00 (0 / 0)")
        if validate:
            out(f" Update state (0x5) verifying install, progress: 50.00 ({total // 2} / {total})")
        out(f" Update state (0x61) downloading, progress: 42.17 ({total * 42 // 100} / {total})")
        time.sleep(self.settings.delay)
        if "disk_full" in self.settings.faults:
            out(f"Error! App '{app}' state is 0x202 after update job.")
            raise CommandFailed(EXIT_APP_FAILED)
        if "timeout" in self.settings.faults:
            # A download that stalls ends as "update required but not completed".
            out(f"Error! App '{app}' state is 0x602 after update job.")
            raise CommandFailed(EXIT_APP_FAILED)
        if self.settings.update_state is not None:
            out(f"Error! App '{app}' state is {self.settings.update_state:#x} after update job.")
            raise CommandFailed(EXIT_APP_FAILED)

    def _workshop_download_item(self, args: list[str]) -> None:
        if self.user is None:
            out("ERROR! Not logged on.")
            raise CommandFailed(EXIT_WORKSHOP_FAILED)
        item = args[1] if len(args) > 1 else ""
        if args[:1] != [str(workshop.WORKSHOP_APP_ID)] or not item.isdigit():
            out(f"ERROR! Download item {item} failed (Failure).")
            raise CommandFailed(EXIT_WORKSHOP_FAILED)
        out(f"Downloading item {item} ...")
        time.sleep(self.settings.delay)
        if "workshop_timeout" in self.settings.faults:
            out(f"ERROR! Timeout downloading item {item}")
            raise CommandFailed(EXIT_WORKSHOP_FAILED)
        source = workshop.catalogue_url(self.settings.steam_home)
        try:
            if source:
                directory, size = workshop.download_from_catalogue(self.root, int(item), source)
            else:
                directory, size = workshop.download_item(self.root, int(item))
        except workshop.ItemFailed as failure:
            out(f"ERROR! Download item {item} failed ({failure}).")
            raise CommandFailed(EXIT_WORKSHOP_FAILED) from None
        out(f'Success. Downloaded item {item} to "{directory}" ({size} bytes)')

    def _runscript(self, args: list[str]) -> None:
        lines = Path(args[0]).read_text().splitlines() if args else []
        for line in lines:
            tokens = line.split("//")[0].split()
            if tokens and not self.run(tokens):
                return


def _with_build(settings: SimSettings, buildid: int) -> SimSettings:
    clone = SimSettings(**vars(settings))
    clone.buildid = buildid
    return clone


def _self_update(settings: SimSettings) -> int | None:
    """The bootstrapper updates steamcmd before anything else; an exit code when it cannot."""
    out(f"Redirecting stderr to '{settings.steam_home / 'logs' / 'stderr.txt'}'")
    home = settings.steam_home
    euid = os.geteuid()
    if euid != 0 and home.is_dir() and home.stat().st_uid != euid:
        # It cannot replace its own files, and says nothing about it.
        out('ILocalize::AddFile() failed to load file "public/steambootstrapper_english.txt".')
        out("[  0%] Checking for available update...")
        return EXIT_FOREIGN_HOME
    if "self_update_offline" in settings.faults:
        out('ILocalize::AddFile() failed to load file "public/steambootstrapper_english.txt".')
        out("[  0%] Checking for available update...")
        out("[----] Verifying installation...")
        out("[  0%] Downloading update...")
        out("[  0%] Checking for available update...")
        out("[----] !!! Fatal Error: Steamcmd needs to be online to update.  Please confirm your"
            " network connection and try again.")
        return EXIT_TIMED_OUT
    return None


def _banner(settings: SimSettings) -> None:
    out("[  0%] Checking for available updates...")
    out("[----] Verifying installation...")
    out(f"Steam Console Client (c) Valve Corporation - version {CLIENT_VERSION}")
    out("-- type 'quit' to exit --")
    out("Loading Steam API...OK")


def _interactive(stream: Iterable[str]) -> Iterable[list[str]]:
    """Without +quit steamcmd reads commands from its prompt until EOF or quit."""
    for line in stream:
        if line.split():
            yield line.split()


def run_commands(commands: Iterable[list[str]], session: Session) -> int:
    try:
        for command in commands:
            if not session.run(command):
                break
    except CommandFailed as failure:
        return failure.exit_code
    finally:
        out("Unloading Steam API...OK")
    return EXIT_OK


def main(argv: list[str]) -> int:
    if argv[:1] == ["bootstrap"]:
        if len(argv) != 2:
            print("usage: python3 -m standins.steamcmd bootstrap DIR", file=sys.stderr)
            return 2
        bootstrap(Path(argv[1]))
        return EXIT_OK
    settings = load_settings()
    refused = _self_update(settings)
    if refused is not None:
        return refused
    _banner(settings)
    script = split_script(argv)
    ends_with_quit = any(cmd[0].lower() in {"quit", "exit"} for cmd in script)
    commands = script if ends_with_quit else itertools.chain(script, _interactive(sys.stdin))
    return run_commands(commands, Session(settings))
