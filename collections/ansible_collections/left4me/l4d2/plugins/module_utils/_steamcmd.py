# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# Shipped to hosts verbatim: standard library only (tests/collection/test_host_libraries.py).
"""steamcmd for the shared game install: scripts, output classification, manifests, links.

Standard library only (target hosts have no ``vdf`` package). The collection's
``srcds_install`` module is the thin adapter around these functions.

* ``parse_vdf`` reads Valve's text KeyValues (``steamapps/appmanifest_222860.acf``),
  ``read_app_state`` turns the manifest into the installed build and whether it is
  complete.
* ``install_script`` writes the steamcmd command script; secrets go into that file
  (mode 0600), never onto a command line.
* ``classify_output`` maps steamcmd's console text, update-state code and exit code to an
  actionable ``Failure`` (tables ``UPDATE_STATE_KINDS`` and ``EXIT_CODE_KINDS``), and
  ``failure_message`` says what to do about it.
* ``plan_steamclient_links``/``apply_steamclient_links`` keep
  ``~/.steam/sdk32|sdk64/steamclient.so`` pointing into steamcmd's ``linux32``/``linux64``,
  without which srcds cannot init Steam.
* ``run_streaming`` runs steamcmd as the runtime user with a deadline, keeping the
  output (and optionally copying it to a log file as it arrives).
"""

from __future__ import annotations

import collections
import errno
import os
import re
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass, field

try:
    from ansible_collections.left4me.l4d2.plugins.module_utils._common import replace_symlink
except ImportError:  # the host's copy, beside left4me_common.py (role overlays)
    from left4me_common import replace_symlink  # type: ignore[no-redef]

APP_ID = 222860
SUCCESS_RE = re.compile(r"Success! App '(\d+)' (fully installed|already up to date)")
# StateFlags of a complete install (k_EAppStateFullyInstalled with no other bit set).
STATE_FULLY_INSTALLED = 4
# Characters a steamcmd script line cannot carry inside one argument.
_SCRIPT_UNSAFE_RE = re.compile(r"[\s\"]")
_STATE_RE = re.compile(r"[Ss]tate is (0x[0-9a-fA-F]+) after update job")


class SteamcmdError(Exception):
    """Bad input or a host state we refuse; the message tells a person what to do."""


# --- VDF (Valve KeyValues text) ------------------------------------------------


_VDF_TOKEN_RE = re.compile(
    r"""
    \s+                                  # whitespace
    | //[^\n]*                           # comment to end of line
    | \[[^\]\n]*\]                       # conditional such as [$WIN32]: ignored
    | (?P<open>\{) | (?P<close>\})
    | "(?P<quoted>(?:[^"\\]|\\.)*)"      # quoted string with backslash escapes
    | (?P<bare>[^\s{}"]+)                # unquoted token
    """,
    re.VERBOSE | re.DOTALL,
)
_VDF_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"'}


def _vdf_tokens(text: str):
    position = 0
    while position < len(text):
        match = _VDF_TOKEN_RE.match(text, position)
        if not match:
            raise SteamcmdError(f"VDF: unexpected {text[position:position + 20]!r} at {position}")
        position = match.end()
        if match.group("open"):
            yield "{", None
        elif match.group("close"):
            yield "}", None
        elif match.group("quoted") is not None:
            raw = match.group("quoted")
            yield "str", re.sub(r"\\(.)", lambda m: _VDF_ESCAPES.get(m.group(1), m.group(1)), raw)
        elif match.group("bare") is not None:
            yield "str", match.group("bare")


def parse_vdf(text: str) -> dict:
    """Parse text KeyValues into nested dicts of str; a repeated key keeps the last value."""
    root: dict = {}
    stack = [root]
    key = None
    for kind, value in _vdf_tokens(text):
        if kind == "str":
            if key is None:
                key = value
            else:
                stack[-1][key] = value
                key = None
        elif kind == "{":
            if key is None:
                raise SteamcmdError("VDF: '{' without a key before it")
            child: dict = {}
            stack[-1][key] = child
            stack.append(child)
            key = None
        else:
            if key is not None or len(stack) == 1:
                raise SteamcmdError("VDF: unbalanced '}' or a key without a value")
            stack.pop()
    if key is not None or len(stack) != 1:
        raise SteamcmdError("VDF: unexpected end of text (missing '}' or value)")
    return root


def _get_ci(mapping: dict, key: str):
    """Steam treats KeyValues keys case-insensitively."""
    for candidate, value in mapping.items():
        if candidate.lower() == key.lower():
            return value
    return None


# --- the installed app ---------------------------------------------------------


@dataclass(frozen=True)
class AppState:
    buildid: int | None = None
    state_flags: int | None = None
    depots: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        return self.buildid is not None and self.state_flags == STATE_FULLY_INSTALLED


def manifest_path(install_dir: str, app_id: int = APP_ID) -> str:
    return os.path.join(install_dir, "steamapps", f"appmanifest_{app_id}.acf")


def app_state_from_manifest(text: str) -> AppState:
    app = _get_ci(parse_vdf(text), "AppState")
    if not isinstance(app, dict):
        raise SteamcmdError("app manifest has no AppState section")

    def number(key: str) -> int | None:
        value = _get_ci(app, key)
        return int(value) if isinstance(value, str) and value.isdigit() else None

    depots = _get_ci(app, "InstalledDepots")
    return AppState(
        buildid=number("buildid"),
        state_flags=number("StateFlags"),
        depots=tuple(sorted(depots)) if isinstance(depots, dict) else (),
    )


def read_app_state(install_dir: str, app_id: int = APP_ID) -> AppState:
    """The install's manifest as an AppState; no (or an unreadable) manifest = nothing installed."""
    try:
        with open(manifest_path(install_dir, app_id), encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except FileNotFoundError:
        return AppState()
    try:
        return app_state_from_manifest(text)
    except SteamcmdError:
        # A truncated manifest (steamcmd killed mid-write) means "not installed": reinstall.
        return AppState()


# --- scripts -------------------------------------------------------------------


def check_script_argument(value: str, what: str) -> str:
    if not value or _SCRIPT_UNSAFE_RE.search(value):
        raise SteamcmdError(
            f"{what} must be non-empty without whitespace or double quotes:"
            " a steamcmd script line cannot carry them"
        )
    return value


def install_script(
    install_dir: str,
    steam_user: str = "anonymous",
    steam_password: str | None = None,
    validate: bool = False,
    platform_pass: bool = False,
    app_id: int = APP_ID,
) -> str:
    """The steamcmd script for one install/update run (``+runscript FILE``).

    ``platform_pass`` first installs the Windows depots, then the Linux ones with
    ``validate``: the anonymous licence of 222860 only allows a Linux install into a
    directory that already had the Windows pass ("Invalid platform" otherwise).
    """
    check_script_argument(install_dir, "install_dir")
    check_script_argument(steam_user, "steam_user")
    login = ["login", steam_user]
    if steam_user != "anonymous":
        if not steam_password:
            raise SteamcmdError(f"steam_password is required for steam_user {steam_user!r}")
        login.append(check_script_argument(steam_password, "steam_password"))
    lines = [
        "@ShutdownOnFailedCommand 1",  # stop at the first failure instead of carrying on
        "@NoPromptForPassword 1",  # never wait on a prompt nobody can answer
        f"force_install_dir {install_dir}",  # before login, or steamcmd ignores it
        " ".join(login),
    ]
    if platform_pass:
        lines += [
            "@sSteamCmdForcePlatformType windows",
            f"app_update {app_id}",
            "@sSteamCmdForcePlatformType linux",
            f"app_update {app_id} validate",
        ]
    else:
        lines.append(f"app_update {app_id}" + (" validate" if validate else ""))
    lines.append("quit")
    return "\n".join(lines) + "\n"


# --- output classification -----------------------------------------------------


@dataclass(frozen=True)
class Failure:
    kind: str
    detail: str


# Kinds after which the module runs the Windows-then-Linux platform pass: the anonymous
# licence of 222860 refuses a first Linux install with either text.
PLATFORM_PASS_KINDS = frozenset({"invalid_platform", "missing_configuration"})

# (kind, pattern) in order: the first match names the failure.
_FAILURE_PATTERNS = (
    ("invalid_platform", re.compile(r"\(Invalid platform\)")),
    # A first anonymous Linux install, or a cold appinfo cache (steamcmd's first run on a
    # host, right after its self-update): transient, a retry usually succeeds.
    ("missing_configuration", re.compile(r"\(Missing configuration\)")),
    ("no_subscription", re.compile(r"\(No subscription\)")),
    ("steam_guard", re.compile(
        r"Two-factor code mismatch|Invalid Login Auth Code|Account Logon Denied"
        r"|Steam Guard code|two-factor", re.IGNORECASE)),
    ("login_failed", re.compile(
        r"Logging in user .*FAILED|FAILED login with result code|Login Failure")),
    ("appinfo_timeout", re.compile(r"Timed out waiting for AppInfo update", re.IGNORECASE)),
    ("self_update", re.compile(r"needs to be online to update", re.IGNORECASE)),
    ("disk_full", re.compile(r"Not enough disk space|\(Disk space\)", re.IGNORECASE)),
    ("disk_write", re.compile(r"\(Disk write failure\)|\(Disk read failure\)"
                              r"|\(Missing file permissions\)", re.IGNORECASE)),
    ("offline", re.compile(r"not online or not logged in|\(No Connection\)"
                           r"|\(Service Unavailable\)", re.IGNORECASE)),
)

# `Error! App 'N' state is 0xNNN after update job.` (older builds: `Error! State is ...`).
# Valve documents none of these; the meanings are what operators collected (LinuxGSM's
# list of steamcmd errors) and what the codes' bits say (0x2 = update required).
UPDATE_STATE_KINDS = {
    0x202: "disk_full",  # not enough disk space (quota)
    0x212: "disk_full",  # not enough disk space
    0x402: "network",  # update required, connection to Steam lost
    0x602: "network",  # update required but not completed: content servers unreachable
    0x606: "disk_write",  # cannot write the install (permissions, a symlinked directory)
    0x626: "content",  # missing update files
    0x6A6: "content",  # corrupt update files
}

# Exit codes that only the bootstrapper (steamcmd.sh's self-update, before the console
# starts) returns; it prints no error line for them.
EXIT_CODE_KINDS = {
    7: "steamcmd_dir_owner",  # its directory belongs to another user: self-update refused
}
_CONSOLE_STARTED_RE = re.compile(r"^Loading Steam API", re.MULTILINE)


def _failure_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"(ERROR|Error)!|.*FAILED", line)]
    if errors:
        return errors[-1]
    return lines[-1] if lines else "(no output)"


def succeeded(output: str, app_id: int = APP_ID) -> bool:
    return any(int(m.group(1)) == app_id for m in SUCCESS_RE.finditer(output))


def update_state(output: str) -> int | None:
    """The last `state is 0x... after update job` code in the output, if any."""
    codes = _STATE_RE.findall(output)
    return int(codes[-1], 16) if codes else None


def classify_output(output: str, rc: int | None, app_id: int = APP_ID) -> Failure | None:
    """None when steamcmd installed the app, else the Failure its output names.

    ``rc`` None means the run was stopped at its deadline. Success needs both the
    ``Success! App '222860' ...`` line and rc 0: steamcmd has exited 0 after failures,
    so the exit code alone is not enough. Order: a known error text, then a known update
    state code, then what the exit code alone says (the bootstrapper's quiet exits).
    """
    if rc is None:
        return Failure("run_timeout", _failure_line(output))
    if rc == 0 and succeeded(output, app_id) and not re.search(r"^(ERROR|Error)!", output, re.M):
        return None
    for kind, pattern in _FAILURE_PATTERNS:
        for line in output.splitlines():
            if pattern.search(line):
                return Failure(kind, line.strip())
    state = update_state(output)
    if state is not None:
        kind = UPDATE_STATE_KINDS.get(state, "unknown")
        detail = _failure_line(output)
        return Failure(kind, detail if kind != "unknown" else f"{detail} (update state"
                       f" {state:#x})")
    console_started = bool(_CONSOLE_STARTED_RE.search(output))
    if not console_started and rc in EXIT_CODE_KINDS:
        return Failure(EXIT_CODE_KINDS[rc], f"steamcmd exited {rc} before its console started")
    if not console_started and rc == 1:
        # The bootstrapper updates steamcmd at every start and exits 1, often silently,
        # when it cannot (no route to Valve's CDN, no space, an unwritable directory).
        return Failure("self_update", f"steamcmd exited 1 before its console started:"
                       f" {_failure_line(output)}")
    return Failure("unknown", _failure_line(output))


_ADVICE = {
    "invalid_platform": (
        "steamcmd refused the Linux install of app {app} (Invalid platform), even after the"
        " Windows-then-Linux platform pass. Anonymous installs of 222860 need that pass into"
        " an install dir of their own; remove a half-installed {install_dir} or log in with"
        " an account that owns Left 4 Dead 2"
    ),
    "missing_configuration": (
        "steamcmd could not resolve the configuration of app {app} (Missing configuration),"
        " still after {attempts} Windows-then-Linux platform pass(es). A cold appinfo cache"
        " (steamcmd's first runs on a host) causes this and clears on its own: re-run in a"
        " few minutes; if it persists, check the host's connection to Steam and remove"
        " {steamcmd_dir}/appcache so steamcmd fetches it anew"
    ),
    "no_subscription": (
        "Steam account {user!r} may not install app {app} (No subscription). Use"
        " steam_user=anonymous (the dedicated server is free) or an account that owns it"
    ),
    "steam_guard": (
        "Steam Guard (two-factor) rejected the login of {user!r}. steamcmd here cannot answer"
        " a code prompt: use steam_user=anonymous, an account without Steam Guard, or log in"
        " once interactively as the runtime user so steamcmd caches the session"
    ),
    "login_failed": (
        "Steam login of {user!r} failed. Check steam_user and steam_password; after"
        " 'Rate Limit Exceeded' wait before retrying"
    ),
    "disk_full": (
        "disk: not enough disk space for app {app} in {install_dir} (update state 0x202 or"
        " 0x212). Free space on that filesystem (the dedicated server needs about 15 GB) and"
        " re-run; the download resumes"
    ),
    "disk_write": (
        "disk: steamcmd could not write into {install_dir} (update state 0x606 or a"
        " permission error). It and every directory under it (follow symlinks) must be"
        " writable by {run_as}, who runs steamcmd: chown -R {run_as}: {install_dir}"
    ),
    "content": (
        "content: steamcmd found its downloaded update files missing or corrupt (update state"
        " 0x626 or 0x6A6). Re-run with validate: true (role: game_host_install_validate) so"
        " steamcmd checks and re-fetches them; if it repeats, remove"
        " {install_dir}/steamapps/downloading and check the disk for errors"
    ),
    "network": (
        "network: steamcmd could not reach Steam's content servers (update state 0x402 or"
        " 0x602: an update is required but did not complete). Check the host's DNS and"
        " outbound HTTP(S) to Steam's CDN, then re-run; the download resumes"
    ),
    "appinfo_timeout": (
        "network: steamcmd timed out waiting for Steam to send the app information of {app}"
        " (ERROR! Timed out waiting for AppInfo update). Steam's servers were slow or"
        " unreachable: check the host's DNS and outbound connections to Steam and re-run"
    ),
    "self_update": (
        "steamcmd could not update itself and exited 1 before doing anything (it updates at"
        " every start). Check that the host reaches Valve's CDN (DNS, outbound HTTPS), that"
        " the filesystem of {steamcmd_dir} has free space and that {run_as} may write there;"
        " then re-run"
    ),
    "steamcmd_dir_owner": (
        "steamcmd exited 7 before doing anything: its directory {steamcmd_dir} (or files in"
        " it) belongs to another user than {run_as}, who runs it, so it cannot update"
        " itself. chown -R {run_as}: {steamcmd_dir} and re-run"
    ),
    "run_timeout": (
        "steamcmd did not finish within {timeout} s and was stopped. Raise timeout for a"
        " first install on a slow link; the next run resumes the download"
    ),
    "offline": (
        "steamcmd could not reach Steam. Check the host's DNS and outbound HTTPS/UDP to"
        " Steam, then re-run"
    ),
    "unknown": (
        "steamcmd failed installing app {app}. See output_tail and steamcmd's logs in"
        " {steamcmd_dir}/logs"
    ),
}


def failure_message(failure: Failure, **context) -> str:
    """An actionable one-paragraph message: what happened, then what to do."""
    values = {"app": APP_ID, "user": "anonymous", "install_dir": "?", "steamcmd_dir": "?",
              "timeout": "?", "run_as": "the runtime user", "attempts": 1}
    values.update(context)
    advice = _ADVICE.get(failure.kind, _ADVICE["unknown"]).format(**values)
    return f"{advice} [{failure.kind}: {failure.detail}]"


# --- ~/.steam/sdk32|sdk64 links --------------------------------------------------


@dataclass(frozen=True)
class Link:
    path: str
    target: str


def plan_steamclient_links(home: str, steamcmd_dir: str) -> list[Link]:
    """The links srcds needs to init Steam: ~/.steam/sdkNN/steamclient.so -> steamcmd's."""
    return [
        Link(os.path.join(home, ".steam", sdk, "steamclient.so"),
             os.path.join(steamcmd_dir, arch, "steamclient.so"))
        for sdk, arch in (("sdk32", "linux32"), ("sdk64", "linux64"))
    ]


class LinkLayoutError(Exception):
    """A ``~/.steam`` layout the links cannot be written into without harm."""


def sdk_dir_link(link: Link) -> str | None:
    """Where ``~/.steam/sdkNN`` points when it is itself a link (else None).

    The Steam client's ``steam.sh`` makes ``~/.steam/sdk32`` a link to its own ``linux32``
    (ValveSoftware/steam-for-linux#2232's trace, #3696's listing), and the classic hand fix
    for "Failed to load steamclient.so" links it to steamcmd's. Writing ``steamclient.so``
    through such a link replaces the file in the directory it names: steamcmd's own
    ``steamclient.so`` becomes a link to itself.
    """
    directory = os.path.dirname(link.path)
    return os.readlink(directory) if os.path.islink(directory) else None


def writes_onto_target(link: Link) -> bool:
    """Whether writing ``link.path`` would replace ``link.target`` itself (a self-link)."""
    return (os.path.realpath(os.path.dirname(link.path))
            == os.path.realpath(os.path.dirname(link.target))
            and os.path.basename(link.path) == os.path.basename(link.target))


def link_is_correct(link: Link) -> bool:
    """The link is ours: in a directory of its own (not through a link) and naming the target."""
    if sdk_dir_link(link) is not None or writes_onto_target(link):
        return False
    try:
        return os.readlink(link.path) == link.target
    except OSError:
        return False


def target_problem(link: Link) -> str | None:
    """What is wrong with steamcmd's ``steamclient.so`` itself (None when it is a file)."""
    if os.path.isfile(link.target):
        return None
    try:
        os.stat(link.target)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return (f"{link.target} is a link to itself, not steamcmd's library (what a run"
                    " writing through a ~/.steam/sdkNN link to steamcmd's directory leaves);"
                    f" delete it and {os.path.dirname(os.path.dirname(link.target))}/steamcmd.sh"
                    " and re-run playbooks/site.yml, whose role game_host unpacks steamcmd again")
    return f"{link.target} is missing; srcds needs it to init Steam; reinstall steamcmd"


def _own_directory(path: str, uid: int, gid: int) -> None:
    """Make ``path`` a real directory owned by uid:gid, replacing a link found there.

    The link (and what it names) is left alone; only the name ``path`` changes hands.
    """
    if os.path.islink(path):
        os.unlink(path)
    if not os.path.isdir(path):
        os.mkdir(path, 0o755)
        os.chown(path, uid, gid)


def apply_steamclient_links(links: list[Link], uid: int, gid: int) -> list[Link]:
    """Create or repoint the links (and their directories, owned by uid:gid); return changes.

    A ``~/.steam/sdkNN`` that is a link is replaced by a directory of its own first, so no
    file is ever written through it; a link that would name itself is never written.
    """
    changed = []
    for link in links:
        if link_is_correct(link):
            continue
        directory = os.path.dirname(link.path)
        parent = os.path.dirname(directory)
        if os.path.islink(parent):
            raise LinkLayoutError(
                f"{parent} is a link to {os.readlink(parent)}; the sdk32/sdk64 links are not"
                f" written through it (its {os.path.basename(directory)} may be another"
                f" program's, even steamcmd's own {os.path.dirname(link.target)}). Make"
                f" {parent} a directory of the runtime user's own and re-run")
        if not os.path.isdir(parent):
            os.mkdir(parent, 0o755)
            os.chown(parent, uid, gid)
        _own_directory(directory, uid, gid)
        if writes_onto_target(link):  # never a link that names itself
            raise LinkLayoutError(
                f"{link.path} resolves to {link.target} itself; a link there would replace"
                " steamcmd's library with a link to itself")
        replace_symlink(link.path, link.target, (uid, gid))
        changed.append(link)
    return changed


# --- running steamcmd ------------------------------------------------------------


@dataclass
class RunResult:
    rc: int | None
    output: str
    timed_out: bool = False
    tail: list[str] = field(default_factory=list)


def _stop(process: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the whole process group (steamcmd.sh forks), SIGKILL after a grace period."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _read_output(process: subprocess.Popen, deadline: float, chunks: list[bytes],
                 log) -> bool:
    """Collect the process's output (and append it to ``log``) until it closes it or the
    deadline passes; True when the deadline passed."""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            if not selector.select(timeout=min(remaining, 1.0)):
                continue
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                return False
            chunks.append(chunk)
            if log:
                log.write(chunk)
                log.flush()


def run_streaming(
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: str,
    timeout: float,
    user: int | None = None,
    group: int | None = None,
    extra_groups: list[int] | None = None,
    log_path: str | None = None,
    tail_lines: int = 40,
) -> RunResult:
    """Run argv (stdout+stderr merged, stdin closed) until it exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
    chunks: list[bytes] = []
    kwargs: dict = {}
    if user is not None:
        kwargs.update(user=user, group=group, extra_groups=extra_groups or [])
    log = open(log_path, "ab") if log_path else None  # noqa: SIM115 - closed in finally
    try:
        process = subprocess.Popen(  # pylint: disable=consider-using-with
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True, umask=0o022, **kwargs,
        )
        timed_out = _read_output(process, deadline, chunks, log)
        if timed_out:
            _stop(process)
        else:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 1.0))
            except subprocess.TimeoutExpired:
                timed_out = True
                _stop(process)
        process.stdout.close()
    finally:
        if log:
            log.close()
    output = b"".join(chunks).decode("utf-8", errors="replace")
    # steamcmd redraws progress with carriage returns; keep the last state of each line.
    for line in output.splitlines():
        text = line.rsplit("\r", 1)[-1].rstrip()
        if text:
            tail.append(text)
    return RunResult(rc=None if timed_out else process.returncode, output=output,
                     timed_out=timed_out, tail=list(tail))
