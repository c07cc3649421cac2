"""Steam profile names and avatars of the players the poller saw (Web API GetPlayerSummaries).

Off unless the operator configured a Web API key (LEFT4ME_UI_STEAM_API_KEY_FILE, a 0600
file, or LEFT4ME_UI_STEAM_API_KEY); then the poller, after each round of polls, asks
GetPlayerSummaries for the Steam ids seen in the last day whose profile is missing or older
than `steam_profile_max_age_seconds`, at most 100 ids per call (the API's limit), and keeps
the answers in SQLite. Page views only read that cache. A failed lookup (bad key, Steam
down, no network) changes no cached profile, is recorded with why, and is retried no sooner
than RETRY_AFTER_FAILURE_SECONDS; the pages show the names from `status` meanwhile.

The key travels only in the request's query string (where Valve's API takes it): never in
argv, logs, job files or error messages, and no redirect is followed with it.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from left4me_ui import authz
from left4me_ui.authz import Actor
from left4me_ui.core import Core
from left4me_ui.settings import Settings, read_private_file

SUMMARIES_PATH = "/ISteamUser/GetPlayerSummaries/v2/"
MAX_IDS_PER_CALL = 100  # GetPlayerSummaries answers at most 100 steamids per call
TIMEOUT_SECONDS = 10
RETRY_AFTER_FAILURE_SECONDS = 300
SEEN_WITHIN_SECONDS = 24 * 3600  # whose profile the poller keeps fresh: the last day's players
KEEP_LOOKUPS = 50
NO_KEY_NOTE = ("Names as the server's status shows them. Steam profile names and avatars"
               " appear when the operator gives the UI a Steam Web API key"
               " (LEFT4ME_UI_STEAM_API_KEY_FILE, see the UI's README).")

# SteamID64 of an individual account in the public universe: universe 1 << 56,
# type 1 (individual) << 52, instance 1 << 32, plus the 32-bit account id.
INDIVIDUAL_BASE = (1 << 56) | (1 << 52) | (1 << 32)
_STEAM2 = re.compile(r"^STEAM_([0-5]):([01]):(\d{1,10})$")
_STEAM3 = re.compile(r"^\[U:([0-5]):(\d{1,10})\]$")


def steam_id64(steam_id: str) -> str | None:
    """The SteamID64 of a player as `status` shows them, or None (a bot, LAN, pending, ...).

    STEAM_X:Y:Z is account 2Z+Y; engines of L4D2's age print X=1 for the public universe,
    older ones X=0 for the same. [U:1:N] is account N. Other universes (beta, internal,
    dev) have no public profile.
    """
    text = steam_id.strip()
    if match := _STEAM2.match(text):
        universe, low, high = match.groups()
        account = 2 * int(high) + int(low)
        public = universe in ("0", "1")
    elif match := _STEAM3.match(text):
        universe, number = match.groups()
        account, public = int(number), universe == "1"
    else:
        return None
    if not public or not 0 < account < 1 << 32:
        return None
    return str(INDIVIDUAL_BASE + account)


class ProfileError(RuntimeError):
    """A lookup failed; the message says why (and never holds the key)."""


@dataclass(frozen=True)
class Profile:
    steam_id64: str
    name: str  # "" when Steam knows no such profile
    avatar_url: str
    profile_url: str
    fetched_at: float


@dataclass(frozen=True)
class Lookup:
    at: float
    asked: int
    answered: int
    error: str | None


def configured(config: Settings) -> bool:
    return bool(config.steam_api_key_file or config.steam_api_key)


def read_key(config: Settings) -> str:
    """The Web API key: from its file (checked like the UI secret), else the variable."""
    path: Path | None = config.steam_api_key_file
    if path is None:
        if not config.steam_api_key:
            raise ProfileError("no Steam Web API key is configured")
        return config.steam_api_key
    key = read_private_file(path, "the Steam Web API key file", ProfileError).decode().strip()
    if not key or any(c.isspace() for c in key):
        raise ProfileError(f"the Steam Web API key file {path} must hold one key on one line")
    return key


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """The key is in the URL: a redirect would carry it elsewhere, so none is followed."""

    def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003 - stdlib signature
        return None


_OPENER = urllib.request.build_opener(_NoRedirects())


def _http_reason(status: int) -> str:
    if status in (401, 403):
        return (f"the Steam Web API refused the key (HTTP {status}): check"
                " LEFT4ME_UI_STEAM_API_KEY_FILE (or LEFT4ME_UI_STEAM_API_KEY)")
    if status == 429:
        return "the Steam Web API limits this key's calls (HTTP 429); later polls try again"
    return f"the Steam Web API answered HTTP {status}; later polls try again"


def fetch_summaries(base_url: str, key: str, ids: list[str]) -> list[dict]:
    """One GetPlayerSummaries call for at most MAX_IDS_PER_CALL SteamID64s: its `players`."""
    if len(ids) > MAX_IDS_PER_CALL:
        raise ValueError(f"GetPlayerSummaries takes at most {MAX_IDS_PER_CALL} ids")
    query = urllib.parse.urlencode({"key": key, "steamids": ",".join(ids)})
    request = urllib.request.Request(f"{base_url}{SUMMARIES_PATH}?{query}",
                                     headers={"Accept": "application/json"})
    try:
        with _OPENER.open(request, timeout=TIMEOUT_SECONDS) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:  # its str() and reason hold no URL, so no key
        raise ProfileError(_http_reason(exc.code)) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ProfileError(f"the Steam Web API at {base_url} did not answer: {reason}") from None
    except ValueError:
        raise ProfileError("the Steam Web API answered something that is not JSON") from None
    players = (answer.get("response") or {}).get("players") if isinstance(answer, dict) else None
    if not isinstance(players, list):
        raise ProfileError("the Steam Web API's answer holds no response.players")
    return [p for p in players if isinstance(p, dict)]


def _batches(ids: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(ids), MAX_IDS_PER_CALL):
        yield ids[start:start + MAX_IDS_PER_CALL]


def wanted_ids(core: Core) -> list[str]:
    """SteamID64s seen in the last day whose profile is missing or expired, sorted."""
    now = core.clock()
    with core.db.connect() as conn:
        seen = {r["steam_id"] for r in conn.execute(
            "SELECT DISTINCT steam_id FROM player_sessions WHERE steam_id != ''"
            " AND last_seen >= ?", (now - SEEN_WITHIN_SECONDS,))}
        fresh = {r["steam_id64"] for r in conn.execute(
            "SELECT steam_id64 FROM steam_profiles WHERE fetched_at >= ?",
            (now - core.settings.steam_profile_max_age_seconds,))}
    return sorted({i for i in map(steam_id64, seen) if i is not None} - fresh)


def last_lookup(core: Core) -> Lookup | None:
    with core.db.connect() as conn:
        row = conn.execute("SELECT * FROM steam_profile_lookups ORDER BY id DESC LIMIT 1"
                           ).fetchone()
    return None if row is None else Lookup(row["at"], row["asked"], row["answered"],
                                           row["error"])


def refresh(core: Core) -> Lookup | None:
    """Fetch the profiles the cache lacks (the poller's step); None when nothing was asked."""
    if not configured(core.settings):
        return None
    now = core.clock()
    last = last_lookup(core)
    if last is not None and last.error and now - last.at < RETRY_AFTER_FAILURE_SECONDS:
        return None
    wanted = wanted_ids(core)
    if not wanted:
        return None
    answered, error = 0, None
    try:
        key = read_key(core.settings)
        for batch in _batches(wanted):
            players = fetch_summaries(core.settings.steam_api_url, key, batch)
            _store(core, now, batch, players)
            answered += len(players)
    except ProfileError as failed:
        error = str(failed)
    with core.db.connect() as conn:
        conn.execute("INSERT INTO steam_profile_lookups (at, asked, answered, error)"
                     " VALUES (?,?,?,?)", (now, len(wanted), answered, error))
        conn.execute("DELETE FROM steam_profile_lookups WHERE id <= (SELECT MAX(id) FROM"
                     " steam_profile_lookups) - ?", (KEEP_LOOKUPS,))
    return Lookup(now, len(wanted), answered, error)


def _store(core: Core, now: float, asked: list[str], players: list[dict]) -> None:
    by_id = {str(p.get("steamid")): p for p in players}
    with core.db.connect() as conn:
        for steam_id in asked:
            # Steam leaves out ids it knows no profile for: cached empty, asked again later.
            player = by_id.get(steam_id, {})
            conn.execute(
                "INSERT INTO steam_profiles (steam_id64, persona_name, avatar_url, profile_url,"
                " fetched_at) VALUES (?,?,?,?,?) ON CONFLICT (steam_id64) DO UPDATE SET"
                " persona_name = excluded.persona_name, avatar_url = excluded.avatar_url,"
                " profile_url = excluded.profile_url, fetched_at = excluded.fetched_at",
                (steam_id, str(player.get("personaname") or ""),
                 _http_url(player.get("avatarmedium") or player.get("avatar")),
                 _http_url(player.get("profileurl")), now))


def _http_url(value: object) -> str:
    """A URL the page may hand a browser (an image source, a link): http(s) only."""
    text = str(value or "")
    return text if text.startswith(("https://", "http://")) else ""


def for_steam_ids(core: Core, steam_ids: Iterable[str]) -> dict[str, Profile]:
    """Cached profiles by the ids as `status` shows them (expired ones too: better than none)."""
    wanted = {s: i for s in steam_ids if (i := steam_id64(s)) is not None}
    if not wanted:
        return {}
    with core.db.connect() as conn:
        marks = ",".join("?" * len(set(wanted.values())))
        rows = {r["steam_id64"]: r for r in conn.execute(
            f"SELECT * FROM steam_profiles WHERE steam_id64 IN ({marks})",
            tuple(set(wanted.values())))}
    return {s: Profile(i, rows[i]["persona_name"], rows[i]["avatar_url"],
                       rows[i]["profile_url"], rows[i]["fetched_at"])
            for s, i in wanted.items() if i in rows and rows[i]["persona_name"]}


def note(core: Core, actor: Actor) -> str:
    """What the Activity page says about Steam profiles ("" when lookups work).

    Why a lookup failed (it may name the key file) is for admins; users read that it did.
    """
    if not configured(core.settings):
        return NO_KEY_NOTE
    last = last_lookup(core)
    if last is None or not last.error:
        return ""
    with core.db.connect() as conn:
        admin = authz.may_admin(authz.current(conn, actor))
    why = f": {last.error}" if admin else " (an admin sees why here)"
    return (f"Steam profiles could not be looked up{why}. Names as the server's status shows"
            " them until a later poll succeeds.")
