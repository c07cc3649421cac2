"""`bootstrap DIR`: a steamcmd home shaped like Valve's tarball, running this fake."""

from __future__ import annotations

from pathlib import Path

from standins.steamcmd.install import bundle_package

STEAMCMD_SH = """#!/bin/bash
# Stand-in for Valve's steamcmd.sh (left4me standins): same entry point and arguments, runs the
# fake steamcmd bundled in linux32/standin with the host's python3; no network is used.
STEAMROOT="$(cd "${0%/*}" && pwd)"
export STEAMCMD_SIM_HOME="$STEAMROOT"
export PYTHONPATH="$STEAMROOT/linux32/standin${PYTHONPATH:+:$PYTHONPATH}"
exec python3 -m standins.steamcmd "$@"
"""
_ELF32 = b"\x7fELF\x01\x01\x01\x00" + b"\x00" * 8
_ELF64 = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8


def _write_if_changed(path: Path, body: bytes, mode: int) -> None:
    """Idempotent: a second bootstrap leaves files (and their mtimes) alone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not (path.is_file() and path.read_bytes() == body):
        path.write_bytes(body)
    if path.stat().st_mode & 0o777 != mode:
        path.chmod(mode)


def bootstrap(home: Path) -> None:
    files = {
        "steamcmd.sh": (STEAMCMD_SH.encode(), 0o755),
        "linux32/steamcmd": (_ELF32 + b"standin steamcmd placeholder\n", 0o755),
        "linux32/steamclient.so": (_ELF32 + b"standin steamclient placeholder\n", 0o755),
        "linux64/steamclient.so": (_ELF64 + b"standin steamclient placeholder\n", 0o755),
    }
    for relative, (body, mode) in files.items():
        _write_if_changed(home / relative, body, mode)
    bundle_package(home / "linux32" / "standin")
