# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Is there a newer game build than the installed one? Asked without downloading anything.

Standard library only. The module ``srcds_update_check`` is the thin adapter around these
functions. Two ways to ask Steam, each as operators have seen it answer:

* ``steamcmd``: ``+login anonymous +app_info_update 1 +app_info_print 222860 +quit``
  prints noise, an ``AppID : 222860, change number : C/0, last change : DATE`` line and the
  app's KeyValues; ``depots`` > ``branches`` > ``public`` > ``buildid`` is the build Steam
  offers (LinuxGSM's update check reads exactly that and compares it with the manifest's
  ``buildid``). steamcmd answers from its appinfo cache, which ``app_info_update 1``
  refreshes; since late 2024 the first ``app_info_print`` of a run may only say ``No app
  info for AppID 222860 found, requesting...`` (ValveSoftware/steam-for-linux#11521), so
  the script prints twice and the last complete record counts.
* ``webapi``: ``ISteamApps/UpToDateCheck/v1/?appid=550&version=PATCHVERSION`` (the game's
  app id and ``PatchVersion`` from the install's ``left4dead2/steam.inf``) answers
  ``up_to_date`` and, when not, ``required_version`` (the current version's digits, dots
  dropped) and ``Your server is out of date, please upgrade``. An app it cannot check is
  ``success: false`` with an ``error`` in an HTTP 200. It has been seen to say "out of date"
  wrongly now and then, so an answer counts once two agree (NemRun's srcupdatecheck did
  the same).

``decide`` turns the installed build and Steam's answer into update available, up to date
or unknown, always with a sentence saying why.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from ansible_collections.left4me.l4d2.plugins.module_utils._steamcmd import (
    APP_ID,
    SteamcmdError,
    parse_vdf,
    read_app_state,
)

GAME_APP_ID = 550  # the game itself: what UpToDateCheck and steam.inf's appID name
BRANCH = "public"
DEFAULT_API_URL = "https://api.steampowered.com"
UP_TO_DATE_PATH = "/ISteamApps/UpToDateCheck/v1/"
METHODS = ("steamcmd", "webapi")
# Asked at most this often; two agreeing answers end it earlier.
WEBAPI_ATTEMPTS = 3
_HEADER_RE = re.compile(r"^AppID : (\d+), change number : (\d+)/")
_NOT_FOUND_RE = re.compile(r"No app info for AppID (\d+) found")


# --- what is installed ----------------------------------------------------------------


@dataclass(frozen=True)
class Installed:
    buildid: int | None
    complete: bool
    patch_version: str | None


def parse_steam_inf(text: str) -> dict[str, str]:
    """``Key=Value`` lines of ``steam.inf`` (``PatchVersion=2.2.4.3``), keys as written."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key:
            values[key.strip()] = value.strip()
    return values


def read_installed(install_dir: str) -> Installed:
    """The manifest's build and completeness, and steam.inf's PatchVersion (None when absent)."""
    state = read_app_state(install_dir)
    try:
        with open(f"{install_dir}/left4dead2/steam.inf", encoding="utf-8",
                  errors="replace") as handle:
            patch = parse_steam_inf(handle.read()).get("PatchVersion") or None
    except OSError:
        patch = None
    return Installed(buildid=state.buildid, complete=state.complete, patch_version=patch)


# --- Steam's answer ---------------------------------------------------------------------


@dataclass(frozen=True)
class Offer:
    """What Steam said. ``problem`` set: nothing usable, and why."""

    build: int | None = None  # steamcmd: the branch's buildid
    time_updated: int | None = None  # steamcmd: when that build went live (epoch)
    up_to_date: bool | None = None  # webapi: its verdict on the installed version
    required_version: int | None = None  # webapi: the current version's digits
    problem: str | None = None


def check_argv(steamcmd_sh: str, app_id: int = APP_ID) -> list[str]:
    """steamcmd's command line for the check: an anonymous login (app info needs no
    licence, so no password is ever involved), a cache refresh, two prints, quit."""
    return [steamcmd_sh, "+login", "anonymous", "+app_info_update", "1",
            "+app_info_print", str(app_id), "+app_info_print", str(app_id), "+quit"]


def _records(lines: list[str], app_id: int) -> list[str]:
    """The text of each ``"APPID" { ... }`` record printed, in order."""
    records = []
    index = 0
    while index < len(lines):
        if lines[index].strip() == f'"{app_id}"':
            depth, body = 0, [lines[index]]
            for line in lines[index + 1:]:
                body.append(line)
                depth += line.count("{") - line.count("}")
                if depth <= 0 and ("{" in line or "}" in line):
                    break
            records.append("\n".join(body))
            index += len(body)
        else:
            index += 1
    return records


def _branch(record: str, app_id: int, branch: str) -> dict | None:
    try:
        parsed = parse_vdf(record).get(str(app_id))
    except SteamcmdError:
        return None
    depots = parsed.get("depots") if isinstance(parsed, dict) else None
    branches = depots.get("branches") if isinstance(depots, dict) else None
    found = branches.get(branch) if isinstance(branches, dict) else None
    return found if isinstance(found, dict) else None


def parse_app_info(output: str, app_id: int = APP_ID, branch: str = BRANCH) -> Offer:
    """The offered build in ``app_info_print``'s output; the last complete record counts."""
    lines = [line.rsplit("\r", 1)[-1].rstrip() for line in output.splitlines()]
    records = _records(lines, app_id)
    for record in reversed(records):
        found = _branch(record, app_id, branch)
        if found is None:
            continue
        build, updated = found.get("buildid", ""), found.get("timeupdated", "")
        if isinstance(build, str) and build.isdigit():
            return Offer(build=int(build),
                         time_updated=int(updated) if isinstance(updated, str)
                         and updated.isdigit() else None)
    if records:
        empty = all(re.fullmatch(r'\s*"\d+"\s*\{\s*\}\s*', record) for record in records)
        if empty:
            return Offer(problem=f"steamcmd printed an empty record for app {app_id} (change"
                         " number 0/0: its appinfo was not fetched); check again later")
        return Offer(problem=f"steamcmd's record of app {app_id} names no build for branch"
                     f" {branch!r}")
    if any(_NOT_FOUND_RE.search(line) for line in lines):
        return Offer(problem=f"steamcmd had no app info for {app_id} and only requested it"
                     f" ('No app info for AppID {app_id} found, requesting...'), twice in one"
                     " run; check again later")
    return Offer(problem=f"steamcmd printed no app info for {app_id}")


def up_to_date_url(api_url: str, version: str, app_id: int = GAME_APP_ID) -> str:
    query = urllib.parse.urlencode({"appid": app_id, "version": version})
    return f"{api_url.rstrip('/')}{UP_TO_DATE_PATH}?{query}"


def parse_up_to_date(status: int | None, body: bytes, app_id: int = GAME_APP_ID) -> Offer:
    """UpToDateCheck's answer (HTTP status and body; status None: no answer at all)."""
    if status is None:
        return Offer(problem=f"the Web API did not answer: {body.decode('utf-8', 'replace')}")
    if status != 200:
        return Offer(problem=f"the Web API answered HTTP {status}")
    try:
        response = json.loads(body.decode("utf-8")).get("response")
    except (ValueError, UnicodeDecodeError, AttributeError):
        response = None
    if not isinstance(response, dict) or not isinstance(response.get("success"), bool):
        shown = body[:80].decode("utf-8", "replace") or "an empty body"
        return Offer(problem=f"the Web API answered 200 without UpToDateCheck's fields"
                     f" ({shown}); Steam does that under load, try again later")
    if not response["success"]:
        error = response.get("error") or response.get("message") or "no reason given"
        return Offer(problem=f"Steam cannot check app {app_id}: {error}")
    verdict = response.get("up_to_date")
    if verdict is True:
        return Offer(up_to_date=True)
    required = response.get("required_version")
    if verdict is False and isinstance(required, int) and not isinstance(required, bool):
        return Offer(up_to_date=False, required_version=required)
    return Offer(problem=f"the Web API's answer has no usable up_to_date/required_version:"
                 f" {json.dumps(response)[:120]}")


def ask_until_agreed(ask: Callable[[], Offer], attempts: int = WEBAPI_ATTEMPTS) -> Offer:
    """Ask until two answers agree on the verdict; the last problem if none was usable."""
    seen: list[Offer] = []
    last = Offer(problem="not asked")
    for _attempt in range(attempts):
        last = ask()
        if last.problem:
            continue
        if any(earlier.up_to_date == last.up_to_date for earlier in seen):
            return last
        seen.append(last)
    if seen:
        return Offer(problem=f"the Web API's answers disagreed ({len(seen)} usable of"
                     f" {attempts}: up_to_date {[o.up_to_date for o in seen]}); check again")
    return last


# The default opener, as the Workshop's: honours https_proxy, verifies TLS.
OPENER = urllib.request.build_opener()


def fetch(url: str, timeout: float) -> tuple[int | None, bytes]:
    """GET ``url``: (status, body); (None, reason) when nothing answered."""
    try:
        with OPENER.open(url, timeout=timeout) as answer:  # http(s) only: the URL is ours
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return None, str(reason).encode()


# --- the verdict -----------------------------------------------------------------------


def decide(installed: Installed, offer: Offer, method: str, install_dir: str = "",
           steamcmd_dir: str = "") -> dict:
    """Update available (True), up to date (False) or unknown (None), with the reason."""
    result = {
        "method": method,
        "installed_build": installed.buildid,
        "installed_version": installed.patch_version,
        "offered_build": offer.build,
        "offered_time": offer.time_updated,
        "required_version": offer.required_version,
        "update_available": None,
    }

    def verdict(available: bool | None, reason: str) -> dict:
        return {**result, "update_available": available, "reason": reason}

    if not installed.complete:
        return verdict(None, f"no complete install in {install_dir or 'the install dir'}:"
                       " nothing to compare (a converge installs the game)")
    if offer.problem:
        return verdict(None, offer.problem)
    if method == "webapi":
        if offer.up_to_date:
            return verdict(False, f"up to date: Steam holds PatchVersion"
                           f" {installed.patch_version} current for app {GAME_APP_ID}")
        return verdict(True, f"update available: Steam requires version"
                       f" {offer.required_version}; {installed.patch_version} is installed"
                       f" (build {installed.buildid})")
    if offer.build == installed.buildid:
        return verdict(False, f"up to date: Steam offers build {offer.build} on branch"
                       f" {BRANCH!r}, which is installed")
    newer = offer.build is not None and installed.buildid is not None
    if newer and offer.build > installed.buildid:
        return verdict(True, f"update available: Steam offers build {offer.build} on branch"
                       f" {BRANCH!r}; {installed.buildid} is installed")
    return verdict(None, f"Steam's answer names build {offer.build}, older than the installed"
                   f" {installed.buildid}: steamcmd's appinfo cache is stale (delete"
                   f" {steamcmd_dir or 'steamcmd'}/appcache/appinfo.vdf and check again) or"
                   f" Valve rolled the branch back")


def installed_problem(installed: Installed, method: str) -> str | None:
    """What the method needs from the install and it lacks (checked before asking Steam)."""
    if method == "webapi" and installed.complete and not installed.patch_version:
        return "the install's left4dead2/steam.inf has no PatchVersion to ask the Web API about"
    return None
