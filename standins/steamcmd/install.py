"""The Left 4 Dead 2 Dedicated Server install tree that app_update lays out."""

from __future__ import annotations

import hashlib
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from standins import vdftext
from standins.gamebuild import patch_version
from standins.steamcmd.elf import shared_object
from standins.steamcmd.settings import SimSettings

APP_ID = 222860
APP_NAME = "Left 4 Dead 2 Dedicated Server"
# Depots as the stand-in models them: shared content, Windows binaries, Linux binaries.
DEPOT_CONTENT, DEPOT_WINDOWS, DEPOT_LINUX = "222861", "222862", "222863"
PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # the `standins` package itself
_PE_HEADER = b"MZ\x90\x00" + b"\x00" * 12
_HEAD_BYTES = 4096  # bulk files hold this much real data; the rest is a sparse hole
_PAK_FILES = 100  # content beyond this many files goes into loose material folders

SRCDS_RUN = """#!/bin/sh
# Stand-in for Valve's srcds_run (left4me standins): runs the simulated server bundled in bin/.
# Like the real script it works from its own directory, so an overlay's merged dir is the root.
cd "$(dirname "$0")" || exit 1
PYTHONPATH="$(pwd)/bin${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONPATH
exec python3 -m standins.srcds "$@"
"""


@dataclass
class FilePlan:
    """One file to lay out: small files are written whole, large ones as sparse files."""

    relative: str
    head: bytes
    size: int
    mode: int = 0o644


def _placeholder(relative: str, header: bytes, buildid: int) -> FilePlan:
    body = header + f"standin {relative} build {buildid}\n".encode()
    return FilePlan(relative, body, len(body), 0o644)


def _library(relative: str, buildid: int, execstack: bool) -> FilePlan:
    """A loadable, codeless shared object; `execstack` marks it PT_GNU_STACK RWE.

    32-bit like the dedicated server's own libraries, except under a `linux64/` directory.
    """
    payload = f"standin {relative} build {buildid}\n".encode()
    body = shared_object(payload, execstack=execstack, elf64="linux64" in relative.split("/"))
    return FilePlan(relative, body, len(body), 0o755)


def _content_relative(index: int) -> str:
    if index < _PAK_FILES:
        return f"left4dead2/pak01_{index:03d}.vpk"
    return f"left4dead2/materials/standin/set{index // 500:03d}/texture{index:06d}.vtf"


def _content_plans(settings: SimSettings) -> list[FilePlan]:
    """Bulk game data; about one file in ten changes with each build, like a real patch."""
    count = settings.content_files
    per_file = max(settings.content_bytes // count, 64)
    plans = []
    for index in range(count):
        changes_this_build = index % 10 == settings.buildid % 10
        seed = f"{index}:{settings.buildid if changes_this_build else 0}"
        head = hashlib.sha256(seed.encode()).digest() * (_HEAD_BYTES // 32)
        plans.append(
            FilePlan(_content_relative(index), head[: min(per_file, _HEAD_BYTES)], per_file)
        )
    return plans


def _common_plans(settings: SimSettings) -> list[FilePlan]:
    version = patch_version(settings.buildid)
    steam_inf = (
        f"ClientVersion={version}\nServerVersion={version}\nPatchVersion={version}\n"
        f"ProductName=left4dead2\nappID=550\nServerAppID={APP_ID}\n"
        f"SourceRevision={settings.buildid}\n"
    ).encode()
    texts = {
        "left4dead2/steam.inf": steam_inf,
        "left4dead2/gameinfo.txt": b'"GameInfo"\n{\n\tgame\t"Left 4 Dead 2"\n\tappid\t550\n}\n',
        "left4dead2/cfg/valve.rc": b"// load the base configuration\nexec default.cfg\n",
        "left4dead2/cfg/default.cfg": b"// stock defaults (stand-in)\n",
        "left4dead2/addons/readme.txt": b"Add-on VPKs placed here are mounted at start.\n",
        "left4dead2/maps/readme.txt": b"Stock maps live in pak01; custom .bsp files go here.\n",
    }
    plans = [FilePlan(name, body, len(body)) for name, body in texts.items()]
    dir_vpk = b"\x34\x12\xaa\x55\x01\x00\x00\x00\x01\x00\x00\x00\x00"
    dir_vpk += f"build {settings.buildid}".encode()
    plans.append(FilePlan("left4dead2/pak01_dir.vpk", dir_vpk, len(dir_vpk)))
    return plans + _content_plans(settings)


def _platform_plans(platform: str, buildid: int, execstack: set[str]) -> list[FilePlan]:
    if platform == "windows":
        names = ["srcds.exe", "bin/engine.dll", "bin/dedicated.dll", "left4dead2/bin/server.dll"]
        return [_placeholder(name, _PE_HEADER, buildid) for name in names]
    script = SRCDS_RUN.encode()
    plans = [FilePlan("srcds_run", script, len(script), 0o755)]
    plans.append(FilePlan("srcds_linux", script, len(script), 0o755))
    names = ["bin/engine_srv.so", "bin/dedicated_srv.so", "left4dead2/bin/server_srv.so"]
    names += sorted(set(execstack) - set(names))  # extra libraries a build may ship
    return plans + [_library(name, buildid, name in execstack) for name in names]


def _file_matches(path: Path, plan: FilePlan) -> bool:
    try:
        if path.stat().st_size != plan.size:
            return False
        with path.open("rb") as handle:
            return handle.read(len(plan.head)) == plan.head
    except OSError:
        return False


def _write(path: Path, plan: FilePlan) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.standin-tmp")
    with temporary.open("wb") as handle:
        handle.write(plan.head)
        handle.truncate(plan.size)  # the remainder is a hole: gigabytes without using disk
    temporary.chmod(plan.mode)
    temporary.replace(path)


def lay_out(root: Path, plans: list[FilePlan], previous: list[FilePlan] | None) -> int:
    """Write what is missing or differs; untouched files keep their mtimes.

    With `previous` (a plain update) only files whose planned content changed since the installed
    build are rewritten, as steamcmd trusts its manifest; without it (validate, first install)
    every file is checked on disk.
    """
    before = {plan.relative: plan for plan in previous or []}
    written = 0
    for plan in plans:
        path = root / plan.relative
        if previous is not None and path.exists() and before.get(plan.relative) == plan:
            continue
        if not _file_matches(path, plan):
            _write(path, plan)
            written += 1
    return written


def bundle_package(destination: Path) -> None:
    """Copy the standins package (stdlib only) so the install runs with nothing but python3."""
    for source in sorted(PACKAGE_ROOT.rglob("*.py")):
        target = destination / "standins" / source.relative_to(PACKAGE_ROOT)
        body = source.read_bytes()
        if target.is_file() and target.read_bytes() == body:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


def plans_for(platform: str, settings: SimSettings) -> list[FilePlan]:
    return _common_plans(settings) + _platform_plans(
        platform, settings.buildid, settings.execstack)


def manifest_path(root: Path) -> Path:
    return root / "steamapps" / f"appmanifest_{APP_ID}.acf"


@dataclass
class InstalledState:
    buildid: int | None
    depots: set[str]


def read_state(root: Path) -> InstalledState:
    path = manifest_path(root)
    if not path.is_file():
        return InstalledState(None, set())
    text = path.read_text(errors="replace")
    buildid = vdftext.read_value(text, "buildid")
    depots = {
        depot for depot in (DEPOT_CONTENT, DEPOT_WINDOWS, DEPOT_LINUX) if f'"{depot}"' in text
    }
    return InstalledState(int(buildid) if buildid and buildid.isdigit() else None, depots)


def write_manifest(root: Path, settings: SimSettings, depots: set[str], beta: str | None) -> None:
    size_on_disk = sum(p.size for p in plans_for("linux", settings))
    installed = {
        depot: {"manifest": str(settings.buildid * 10 + int(depot[-1])), "size": str(size_on_disk)}
        for depot in sorted(depots)
    }
    state: dict[str, vdftext.VdfValue] = {
        "appid": str(APP_ID),
        "Universe": "1",
        "name": APP_NAME,
        "StateFlags": "4",
        "installdir": APP_NAME,
        "LastUpdated": str(int(time.time())),
        "SizeOnDisk": str(size_on_disk),
        "buildid": str(settings.buildid),
        "LastOwner": "0",
        "BytesToDownload": "0",
        "BytesDownloaded": "0",
        "AutoUpdateBehavior": "0",
        "AllowOtherDownloadsWhileRunning": "0",
        "ScheduledAutoUpdate": "0",
        "InstalledDepots": installed,
        "UserConfig": {"betakey": beta} if beta else {},
        "MountedConfig": {"betakey": beta} if beta else {},
    }
    path = manifest_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(vdftext.dumps("AppState", state))
