"""`app_info_update` and `app_info_print` for 222860: what Steam offers, and how steamcmd
shows it (or fails to).

Real steamcmd prints an `AppID : N, change number : C/0, last change : DATE` line and then the
app's KeyValues, whose `depots` > `branches` > `public` holds `buildid` and `timeupdated` of
the build Steam offers. It answers from its appinfo cache (`appcache/appinfo.vdf` in its home),
which only `app_info_update 1` (or an `app_update`) refreshes: a run that skips it prints what
was cached, however old. Sources and the faults modelled: standins/README.md, "Update checks".
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from standins import vdftext
from standins.gamebuild import DEFAULT_BUILDID
from standins.steamcmd import install
from standins.steamcmd.settings import SimSettings

# When the default build was offered; a later build is offered a day per build later.
_DEFAULT_TIMEUPDATED = 1729000000
_DEPOT_NAMES = {
    install.DEPOT_CONTENT: "Left 4 Dead 2 Dedicated Server Content",
    install.DEPOT_WINDOWS: "Left 4 Dead 2 Dedicated Server Windows Binaries",
    install.DEPOT_LINUX: "Left 4 Dead 2 Dedicated Server Linux Binaries",
}


def cache_path(home: Path) -> Path:
    return home / "appcache" / "appinfo.vdf"


def offered(settings: SimSettings) -> dict[str, int]:
    """The public branch as Steam describes it now: the build `app_update` installs."""
    build = settings.buildid
    return {
        "buildid": build,
        "timeupdated": _DEFAULT_TIMEUPDATED + 86400 * (build - DEFAULT_BUILDID),
        "change_number": 26_000_000 + build % 1_000_000,
    }


def read_cache(home: Path) -> dict[str, int] | None:
    """What this steamcmd home last fetched for 222860 (the stand-in's cache is JSON; the
    real appinfo.vdf is binary, and nothing but steamcmd reads either)."""
    try:
        return json.loads(cache_path(home).read_text())[str(install.APP_ID)]
    except (OSError, ValueError, KeyError):
        return None


def write_cache(home: Path, info: dict[str, int]) -> None:
    path = cache_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({str(install.APP_ID): info}))


def refresh(settings: SimSettings) -> None:
    """`app_info_update 1`: fetch the app's info anew, unless the cache is stuck (fault
    `appinfo_stale`: operators found `app_info_update 1` kept an old buildid until
    appinfo.vdf was deleted)."""
    home = settings.steam_home
    if "appinfo_stale" in settings.faults and read_cache(home) is not None:
        return
    write_cache(home, offered(settings))


def _last_change(epoch: int) -> str:
    return time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(epoch))


def render(app_id: str, info: dict[str, int] | None) -> list[str]:
    """The lines app_info_print prints for an app whose info it has (None: an empty record,
    `change number : 0/0` and `{}`, as steamcmd printed while its appinfo was broken)."""
    if info is None:
        header = f"AppID : {app_id}, change number : 0/0, last change : {_last_change(0)}"
        return [header, f'"{app_id}"', "{", "}"]
    depots: dict[str, vdftext.VdfValue] = {
        depot: {"name": name, "config": {"oslist": "linux" if depot == install.DEPOT_LINUX
                                          else "windows" if depot == install.DEPOT_WINDOWS
                                          else "windows,linux"},
                "manifests": {"public": {"gid": str(info["buildid"] * 1000 + int(depot[-1])),
                                         "size": "4194304"}}}
        for depot, name in _DEPOT_NAMES.items()
    }
    depots["branches"] = {"public": {"buildid": str(info["buildid"]),
                                     "timeupdated": str(info["timeupdated"])}}
    body: dict[str, vdftext.VdfValue] = {
        "common": {"name": install.APP_NAME, "type": "Tool", "oslist": "windows,linux",
                   "gameid": app_id},
        "config": {"installdir": install.APP_NAME},
        "depots": depots,
    }
    header = (f"AppID : {app_id}, change number : {info['change_number']}/0, last change :"
              f" {_last_change(info['timeupdated'])}")
    return [header, *vdftext.dumps(app_id, body).splitlines()]
