# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Files overlays: a declared set of text files (configs, motd, cfg packs) in an overlay.

The overlay ``{state_dir}/overlays/{id}/`` is a game root, so ``dest`` paths are
relative to it, e.g. ``left4dead2/cfg/server.cfg``. Every path stays inside the
overlay: ``dest`` must be relative with no ``.``/``..``/empty components, and every
existing directory on the way must be a real directory, never a symlink, so no
write is redirected out of the overlay. A file's place taken by a symlink or a
directory is an error rather than something to follow or replace.

The manifest ``.left4me-files.json`` in the overlay lists the files we manage.
Files the previous manifest listed and the new set lacks are deleted; anything
else in the overlay is left alone. Before changing files the manifest is written
as the union of old and new, so an interrupted run still knows every file it may
have created. Files are written to a temp file in their directory and renamed.

Standard library only; the ``files_overlay`` module is the adapter.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field

from ansible_collections.left4me.l4d2.plugins.module_utils._common import (
    Left4meError,
    write_atomic,
)

MANIFEST_NAME = ".left4me-files.json"
MAX_DIFF_BYTES = 64 * 1024
_MODE_RE = re.compile(r"0?[0-7]{3,4}")


class FilesOverlayError(Left4meError):
    """Bad input or a host state we refuse; the message says what to do."""


def validate_dest(dest: object) -> str:
    """A relative path that cannot leave the overlay, returned unchanged."""
    if not isinstance(dest, str) or not dest:
        raise FilesOverlayError(f"dest must be a non-empty relative path, got {dest!r}")
    if "\0" in dest or "\n" in dest:
        raise FilesOverlayError(f"dest {dest!r} contains a NUL or newline")
    if dest.startswith("/"):
        raise FilesOverlayError(f"dest {dest!r} is absolute; give it relative to the overlay"
                                " (the game root), e.g. left4dead2/cfg/server.cfg")
    parts = dest.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise FilesOverlayError(f"dest {dest!r} has an empty, '.' or '..' component;"
                                " paths must stay inside the overlay")
    if dest == MANIFEST_NAME:
        raise FilesOverlayError(f"dest {dest!r} is the manifest left4me keeps in the overlay")
    return dest


def parse_mode(mode: object) -> int:
    text = str(mode)
    if not _MODE_RE.fullmatch(text):
        raise FilesOverlayError(f"mode {mode!r} must be octal digits as a string, e.g. '0644'")
    value = int(text, 8)
    if value & 0o7000:
        raise FilesOverlayError(f"mode {mode!r}: setuid, setgid and sticky bits are refused")
    return value


@dataclass(frozen=True)
class WantedFile:
    dest: str
    content: bytes
    mode: int


def wanted_files(files: Iterable[dict[str, object]]) -> list[WantedFile]:
    result: dict[str, WantedFile] = {}
    for entry in files:
        dest = validate_dest(entry.get("dest"))
        if dest in result:
            raise FilesOverlayError(f"dest {dest!r} is listed twice")
        content = entry.get("content")
        if not isinstance(content, str):
            raise FilesOverlayError(f"{dest}: content must be text")
        result[dest] = WantedFile(dest, content.encode("utf-8"), parse_mode(entry.get("mode",
                                                                                      "0644")))
    for dest in result:  # a file cannot also be a directory of another
        prefix = dest + "/"
        clash = next((other for other in result if other.startswith(prefix)), None)
        if clash:
            raise FilesOverlayError(f"dest {dest!r} is a file but {clash!r} needs it as a"
                                    " directory")
    return list(result.values())


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def missing_dirs(root: str, dest: str) -> list[str]:
    """Directories to create for ``dest``; raises if any existing one is not a real dir."""
    missing: list[str] = []
    current = root
    for part in ["", *dest.split("/")[:-1]]:
        current = os.path.join(current, part) if part else current
        info = _lstat(current) if not missing else None
        if info is None:
            missing.append(current)
        elif not stat.S_ISDIR(info.st_mode):
            kind = "a symlink" if stat.S_ISLNK(info.st_mode) else "not a directory"
            raise FilesOverlayError(
                f"{current} is {kind}; files overlays never write through it."
                " Move it away and run again"
            )
    return missing


@dataclass
class Current:
    content: bytes | None
    mode: int
    uid: int
    gid: int


def read_current(path: str) -> Current | None:
    """The file at ``path`` without following a symlink; None if absent."""
    info = _lstat(path)
    if info is None:
        return None
    if not stat.S_ISREG(info.st_mode):
        kind = "a symlink" if stat.S_ISLNK(info.st_mode) else "not a regular file"
        raise FilesOverlayError(f"{path} is {kind}; remove it so the managed file can be written")
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as fh:
        content = fh.read()
    return Current(content, stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid)


def read_manifest(root: str) -> list[str]:
    path = os.path.join(root, MANIFEST_NAME)
    info = _lstat(path)
    if info is None or not stat.S_ISREG(info.st_mode):
        return []
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        files = data.get("files", [])
    except (OSError, ValueError, AttributeError):
        return []
    listed = []
    for dest in files if isinstance(files, list) else []:
        with contextlib.suppress(FilesOverlayError):
            listed.append(validate_dest(dest))  # a tampered manifest cannot point outside
    return listed


@dataclass
class FileChange:
    dest: str
    action: str  # create | update | attributes | remove
    before: bytes | None = None
    after: bytes | None = None


@dataclass
class FilesPlan:
    root: str
    wanted: list[WantedFile]
    previous: list[str]
    owner: tuple[int, int]
    dir_mode: int
    create_dirs: list[str] = field(default_factory=list)
    changes: list[FileChange] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.changes or self.create_dirs or self.manifest_stale)

    @property
    def manifest_stale(self) -> bool:
        return sorted(self.previous) != sorted(f.dest for f in self.wanted)


def plan_files(
    root: str,
    files: Iterable[dict[str, object]],
    owner: tuple[int, int],
    dir_mode: int = 0o755,
) -> FilesPlan:
    wanted = wanted_files(files)
    overlays = os.path.dirname(root)
    info = _lstat(overlays)
    if info is None or not stat.S_ISDIR(info.st_mode):
        raise FilesOverlayError(f"{overlays} is missing or not a real directory;"
                                " the game_host role creates it")
    root_missing = missing_dirs(root, "x")  # checks root itself
    previous = [] if root_missing else read_manifest(root)
    plan = FilesPlan(root, wanted, previous, owner, dir_mode)
    create_dirs: dict[str, None] = dict.fromkeys(root_missing)
    for item in wanted:
        new_dirs = missing_dirs(root, item.dest)
        create_dirs.update(dict.fromkeys(new_dirs))
        path = os.path.join(root, item.dest)
        current = None if new_dirs else read_current(path)
        if current is None:
            plan.changes.append(FileChange(item.dest, "create", None, item.content))
        elif current.content != item.content:
            plan.changes.append(FileChange(item.dest, "update", current.content, item.content))
        elif (current.mode, current.uid, current.gid) != (item.mode, *owner):
            plan.changes.append(FileChange(item.dest, "attributes", current.content,
                                           item.content))
        else:
            plan.unchanged.append(item.dest)
    plan.create_dirs = list(create_dirs)
    names = {item.dest for item in wanted}
    for dest in previous:
        if dest in names:
            continue
        with contextlib.suppress(FilesOverlayError):
            if missing_dirs(root, dest):
                continue  # its directory is gone, so is the file
            info = _lstat(os.path.join(root, dest))
            if info is not None and not stat.S_ISDIR(info.st_mode):
                before = None
                if stat.S_ISREG(info.st_mode):
                    before = read_current(os.path.join(root, dest)).content  # type: ignore[union-attr]
                plan.changes.append(FileChange(dest, "remove", before, None))
    return plan


def write_manifest(root: str, dests: Iterable[str], owner: tuple[int, int]) -> None:
    content = json.dumps({"version": 1, "files": sorted(set(dests))}, indent=1) + "\n"
    write_atomic(os.path.join(root, MANIFEST_NAME), content.encode(), 0o644, owner)


def apply_files_plan(plan: FilesPlan) -> None:
    for directory in plan.create_dirs:
        os.mkdir(directory, plan.dir_mode)
        os.chmod(directory, plan.dir_mode)
        os.chown(directory, *plan.owner)
    wanted = {item.dest: item for item in plan.wanted}
    write_manifest(plan.root, [*plan.previous, *wanted], plan.owner)
    for change in plan.changes:
        path = os.path.join(plan.root, change.dest)
        if change.action == "remove":
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # unlink never follows a symlink
        else:
            item = wanted[change.dest]
            # re-check right before writing: nothing may have become a symlink since planning
            missing_dirs(plan.root, change.dest)
            write_atomic(path, item.content, item.mode, plan.owner)
    write_manifest(plan.root, wanted, plan.owner)


def diff_text(content: bytes | None) -> str:
    if content is None:
        return ""
    if len(content) > MAX_DIFF_BYTES:
        return f"({len(content)} bytes, too large to show)\n"
    return content.decode("utf-8", "replace")


def plan_diff(plan: FilesPlan) -> list[dict[str, str]]:
    diffs = []
    for change in plan.changes:
        path = os.path.join(plan.root, change.dest)
        diffs.append({
            "before_header": path if change.before is not None else "/dev/null",
            "after_header": path if change.after is not None else "/dev/null",
            "before": diff_text(change.before),
            "after": diff_text(change.after),
        })
    return diffs
