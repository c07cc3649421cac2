"""The game build the stand-ins offer: one copy for steamcmd (what it installs and prints in
app_info_print) and the Web API (what ISteamApps/UpToDateCheck calls current).

Standard library only and importing no other stand-in: the Web API stand-in runs on test
hosts from a copy of just its own files and this one (molecule/overlays' prepare).
"""

from __future__ import annotations

DEFAULT_BUILDID = 16140412


def patch_version(buildid: int) -> str:
    """steam.inf's PatchVersion for a build (what srcds reports and UpToDateCheck compares)."""
    return f"2.2.4.{buildid % 1000}"
