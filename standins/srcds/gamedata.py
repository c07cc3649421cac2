"""What srcds finds in its game directory: maps, add-ons, SourceMod, steam.inf."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from standins.vpk import is_vpk

STOCK_MAPS = frozenset(
    [
        "c1m1_hotel",
        "c1m2_streets",
        "c1m3_mall",
        "c1m4_atrium",
        "c2m1_highway",
        "c2m2_fairgrounds",
        "c2m3_coaster",
        "c2m4_barns",
        "c2m5_concert",
        "c3m1_plankcountry",
        "c3m2_swamp",
        "c3m3_shantytown",
        "c3m4_plantation",
        "c4m1_milltown_a",
        "c4m2_sugarmill_a",
        "c4m3_sugarmill_b",
        "c4m4_milltown_b",
        "c4m5_milltown_escape",
        "c5m1_waterfront",
        "c5m2_park",
        "c5m3_cemetery",
        "c5m4_quarter",
        "c5m5_bridge",
        "c6m1_riverbank",
        "c6m2_bedlam",
        "c6m3_port",
        "c7m1_docks",
        "c7m2_barge",
        "c7m3_port",
        "c8m1_apartment",
        "c8m2_subway",
        "c8m3_sewers",
        "c8m4_interior",
        "c8m5_rooftop",
        "c9m1_alleys",
        "c9m2_lots",
        "c10m1_caves",
        "c10m2_drainage",
        "c10m3_ranchhouse",
        "c10m4_mainstreet",
        "c10m5_houseboat",
        "c11m1_greenhouse",
        "c11m2_offices",
        "c11m3_garage",
        "c11m4_terminal",
        "c11m5_runway",
        "c12m1_hilltop",
        "c12m2_traintunnel",
        "c12m3_bridge",
        "c12m4_barn",
        "c12m5_cornfield",
        "c13m1_alpinecreek",
        "c13m2_southpinestream",
        "c13m3_memorialbridge",
        "c13m4_cutthroatcreek",
        "c14m1_junkyard",
        "c14m2_lighthouse",
    ]
)
DEFAULT_PATCH_VERSION = "2.2.4.3"
DEFAULT_SERVER_VERSION = "9215"


@dataclass
class AddonScan:
    loaded: list[str]
    missing: list[str]  # dangling symlinks, as "name -> target"
    invalid: list[str]  # files without a VPK signature


@dataclass
class Version:
    patch: str
    server: str


def map_exists(game_dir: Path, name: str) -> bool:
    if name in STOCK_MAPS:
        return True
    return (game_dir / "maps" / f"{name}.bsp").is_file()


def scan_addons(game_dir: Path) -> AddonScan:
    """List addons/*.vpk through symlinks, as an overlay of linked workshop items presents them."""
    scan = AddonScan(loaded=[], missing=[], invalid=[])
    addons = game_dir / "addons"
    if not addons.is_dir():
        return scan
    for entry in sorted(addons.iterdir()):
        if entry.suffix.lower() != ".vpk":
            continue
        if entry.is_symlink() and not entry.exists():
            scan.missing.append(f"{entry.name} -> {os.readlink(entry)}")
        elif is_vpk(entry):
            scan.loaded.append(entry.name)
        else:
            scan.invalid.append(entry.name)
    return scan


def read_version(game_dir: Path) -> Version:
    """PatchVersion/ServerVersion from steam.inf, which the fake steamcmd writes per build."""
    version = Version(DEFAULT_PATCH_VERSION, DEFAULT_SERVER_VERSION)
    try:
        text = (game_dir / "steam.inf").read_text(errors="replace")
    except OSError:
        return version
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "PatchVersion":
            version.patch = value.strip()
        elif key.strip() == "ServerVersion":
            version.server = value.strip()
    return version


def sourcemod_dir(game_dir: Path) -> Path | None:
    """SourceMod's folder when installed; without it srcds has no `sm` command at all."""
    path = game_dir / "addons" / "sourcemod"
    return path if path.is_dir() else None


def sourcemod_plugins(sm_dir: Path) -> list[str]:
    plugins = sm_dir / "plugins"
    return sorted(p.stem for p in plugins.glob("*.smx")) if plugins.is_dir() else []


def sourcemod_extensions(sm_dir: Path) -> list[str]:
    extensions = sm_dir / "extensions"
    if not extensions.is_dir():
        return []
    return sorted(p.name.split(".ext")[0] for p in extensions.glob("*.ext.so"))
