"""Files overlays: a tree of files a person edits on the Overlays page, built on a host by
the collection's `left4me.l4d2.files_overlay` module (playbooks/overlay.yml).

The tree is `Settings.overlays_dir / id`, walked fd-safely by `fd_tree.py`; zip import and
export are `archive.py`'s. Limits (`Settings.overlay_max_*`) are checked before anything
changes. Every change runs inside one database transaction (which also serialises changes
across processes), bumps the overlay's revision and writes an audit row.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
from collections.abc import Iterator
from typing import BinaryIO

from left4me_ui import audit, authz, jobs
from left4me_ui.authz import Actor
from left4me_ui.core import Core
from left4me_ui.overlays.fd_tree import (
    Entry,
    OverlayError,
    Usage,
    check_path,
    existing,
    missing_dirs,
    open_dir,
    open_file,
    open_parent,
    opened_dir,
    refuse_links,
    remove_tree,
    scan,
    size_text,
    stat_at,
    usage_of,
    write_file,
)
from left4me_ui.overlays.rows import (
    BUILD_ALIKE,
    BUILD_PLAYBOOK,
    KIND_BUILD,
    Overlay,
    load,
    require_kind,
    tree_dir,
)
from left4me_ui.settings import Settings

# What playbooks/overlay.yml reads to build a files overlay (build_vars makes them).
BUILD_VARIABLES = frozenset({"left4me_overlay_id", "left4me_overlay_state",
                             "left4me_overlay_incarnation", "left4me_overlay_revision",
                             "left4me_overlay_files"})
FILE_MODE = "0644"  # what the files_overlay module writes on the host (the game only reads)
# A build's files travel as the job's extravars (stored in the job row, handed to ansible
# as one JSON file, and to AWX in one request), so they are bounded: the smaller of this
# and the overlay's own limit. Bigger content belongs in a script or Workshop overlay.
MAX_BUILD_BYTES = 16 * 1024 * 1024


@contextlib.contextmanager
def changing(core: Core, actor: Actor, overlay_id: str, action: str, target: str
             ) -> Iterator[tuple[Actor, Overlay, int]]:
    """Load and authorise the overlay, yield its tree's fd; on success bump and audit."""
    now = core.clock()
    with core.db.connect() as conn:
        me = authz.current(conn, actor)
        overlay = load(conn, me, overlay_id)
        require_kind(overlay, "files")
        try:
            with opened_dir(tree_dir(core, overlay_id)) as root_fd:
                yield me, overlay, root_fd
        except OverlayError:
            raise
        except OSError as exc:  # a full disk, a vanished folder: said, not a traceback
            raise OverlayError(f"the overlay could not be changed: {exc.strerror or exc}"
                               f" ({target})") from None
        conn.execute("UPDATE overlays SET revision = revision + 1, updated_at = ? WHERE id = ?",
                     (now, overlay_id))
        audit.record(conn, now, me.name, action, f"overlay {overlay_id}: {target}", "ok")


@contextlib.contextmanager
def reading(core: Core, actor: Actor, overlay_id: str) -> Iterator[int]:
    with core.db.connect() as conn:
        overlay = load(conn, authz.current(conn, actor), overlay_id)
        require_kind(overlay, "files")
        with opened_dir(tree_dir(core, overlay_id)) as root_fd:
            yield root_fd


def tree(core: Core, actor: Actor, overlay_id: str) -> list[Entry]:
    """Every folder and file, sorted by path (a planted link shows with is_symlink)."""
    with reading(core, actor, overlay_id) as root_fd:
        return list(scan(root_fd))


def usage(core: Core, actor: Actor, overlay_id: str) -> Usage:
    return usage_of(tree(core, actor, overlay_id))


def read_bytes(core: Core, actor: Actor, overlay_id: str, path: str) -> bytes:
    parts = check_path(path)
    with reading(core, actor, overlay_id) as root_fd:
        parent = open_parent(root_fd, parts)
        try:
            info = existing(parent, parts[-1], path)
            if stat.S_ISLNK(info.st_mode):
                raise OverlayError(f"{path} is a symbolic link; left4me never follows one"
                                   " (delete it)")
            if not stat.S_ISREG(info.st_mode):
                raise OverlayError(f"{path} is a folder, not a file")
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
            with os.fdopen(fd, "rb") as handle:
                return handle.read()
        finally:
            os.close(parent)


def read_text(core: Core, actor: Actor, overlay_id: str, path: str) -> str:
    data = read_bytes(core, actor, overlay_id, path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise OverlayError(f"{path} is not UTF-8 text; download it instead") from None


def write_text(core: Core, actor: Actor, overlay_id: str, path: str, text: str) -> None:
    if not isinstance(text, str):
        raise OverlayError("the text must be a string")
    _put(core, actor, overlay_id, path, text.encode("utf-8"), "write overlay file")


def upload(core: Core, actor: Actor, overlay_id: str, path: str,
           data: bytes | BinaryIO) -> None:
    """Store bytes at path (replacing a file there); over a limit: refused, nothing changed."""
    if not isinstance(data, bytes):
        data = data.read(core.settings.overlay_max_file_bytes + 1)
    _put(core, actor, overlay_id, path, data, "upload overlay file")


def _put(core: Core, actor: Actor, overlay_id: str, path: str, data: bytes,
         action: str) -> None:
    parts = check_path(path)
    limits = core.settings
    if len(data) > limits.overlay_max_file_bytes:
        raise OverlayError(f"{path} is {size_text(len(data))}; the most one file may be is"
                           f" {size_text(limits.overlay_max_file_bytes)}")
    with changing(core, actor, overlay_id, action, path) as (_me, _overlay, root_fd):
        current = usage_of(list(scan(root_fd)))
        new_dirs = missing_dirs(root_fd, parts)
        old_size, exists = 0, False
        info = None if new_dirs else stat_at(root_fd, parts)
        if info is not None:
            if stat.S_ISLNK(info.st_mode):
                raise OverlayError(f"{path} is a symbolic link; left4me never writes"
                                   " through one (delete it)")
            if not stat.S_ISREG(info.st_mode):
                raise OverlayError(f"{path} is a folder; pick a file name")
            old_size, exists = info.st_size, True
        total = current.total_bytes - old_size + len(data)
        if total > limits.overlay_max_total_bytes:
            raise OverlayError(f"{path} would make the overlay {size_text(total)}; the most it may"
                               f" hold is {size_text(limits.overlay_max_total_bytes)}")
        _refuse_entries(current.entries + new_dirs + (0 if exists else 1), limits, path)
        parent = open_parent(root_fd, parts, create=True)
        try:
            write_file(parent, parts[-1], data, limits.overlay_max_file_bytes,
                       f"{path} is over the file size limit")
        finally:
            os.close(parent)


def _refuse_entries(entries: int, limits: Settings, subject: str) -> None:
    """Refuse a change after which the overlay would hold more than its entry limit."""
    if entries > limits.overlay_max_entries:
        raise OverlayError(f"{subject} would make the overlay {entries} files and folders;"
                           f" the most it may hold is {limits.overlay_max_entries}")


def make_folder(core: Core, actor: Actor, overlay_id: str, path: str) -> None:
    parts = check_path(path)
    with changing(core, actor, overlay_id, "make overlay folder", path) as (_me, _o, root_fd):
        current = usage_of(list(scan(root_fd)))
        parent_missing = missing_dirs(root_fd, parts)
        if not parent_missing and stat_at(root_fd, parts) is not None:
            raise OverlayError(f"{path} exists already")
        _refuse_entries(current.entries + parent_missing + 1, core.settings, path)
        parent = open_parent(root_fd, parts, create=True)
        try:
            os.mkdir(parts[-1], 0o700, dir_fd=parent)
        finally:
            os.close(parent)


def move(core: Core, actor: Actor, overlay_id: str, source: str, destination: str) -> None:
    """Rename or move a file or folder; never over an existing name."""
    src, dst = check_path(source, "source"), check_path(destination, "destination")
    if dst[:len(src)] == src:
        raise OverlayError(f"cannot move {source} into itself ({destination})")
    with changing(core, actor, overlay_id, "move overlay path",
                  f"{source} -> {destination}") as (_me, _o, root_fd):
        src_parent = open_parent(root_fd, src)
        try:
            info = existing(src_parent, src[-1], source)
            if stat.S_ISLNK(info.st_mode):
                raise OverlayError(f"{source} is a symbolic link; delete it instead")
            if stat.S_ISDIR(info.st_mode):  # what it holds lands deeper: within the limits too
                moved = open_dir(src_parent, src[-1], source)
                try:
                    for entry in scan(moved):
                        check_path(f"{destination}/{entry.path}",
                                   shown=f"moving {source} to {destination} makes"
                                         f" {destination}/{entry.path}, which")
                finally:
                    os.close(moved)
            new_dirs = missing_dirs(root_fd, dst)
            _refuse_entries(usage_of(list(scan(root_fd))).entries + new_dirs, core.settings,
                            "moving")
            if not new_dirs and stat_at(root_fd, dst) is not None:
                raise OverlayError(f"{destination} exists already; delete or rename it first")
            dst_parent = open_parent(root_fd, dst, create=True)
            try:
                os.rename(src[-1], dst[-1], src_dir_fd=src_parent, dst_dir_fd=dst_parent)
            finally:
                os.close(dst_parent)
        finally:
            os.close(src_parent)


def remove(core: Core, actor: Actor, overlay_id: str, path: str) -> None:
    """Delete a file, a folder with everything in it, or a planted link (not what it points to)."""
    parts = check_path(path)
    with changing(core, actor, overlay_id, "delete overlay path", path) as (_me, _o, root_fd):
        parent = open_parent(root_fd, parts)
        try:
            info = existing(parent, parts[-1], path)
            if stat.S_ISDIR(info.st_mode):
                remove_tree(parent, parts[-1])  # fd based: never follows a link
            else:
                os.unlink(parts[-1], dir_fd=parent)
        finally:
            os.close(parent)


# --- what a build hands the collection ---------------------------------------------------------


def files_spec(core: Core, actor: Actor, overlay_id: str) -> list[dict[str, str]]:
    """The overlay as the `files` option of left4me.l4d2.files_overlay (and the overlays
    role's `kind: files` entry): `[{dest, content, mode}]`, every file, sorted by dest. The
    module writes text only, so a file that is not UTF-8 is refused by name."""
    with reading(core, actor, overlay_id) as root_fd:
        return _spec(root_fd)


def _spec(root_fd: int) -> list[dict[str, str]]:
    spec = []
    entries = list(scan(root_fd))
    refuse_links(entries, "build the overlay")
    for entry in entries:
        if entry.is_dir:
            continue
        with open_file(root_fd, entry.path) as handle:
            data = handle.read()
        try:
            content = data.decode("utf-8")
        except UnicodeDecodeError:
            raise OverlayError(f"{entry.path} is not UTF-8 text; a files overlay holds text"
                               " only (the host's files_overlay module writes text)") from None
        spec.append({"dest": entry.path, "content": content, "mode": FILE_MODE})
    return spec


def build_vars(overlay: Overlay, spec: list[dict[str, str]], limit: int) -> dict:
    """playbooks/overlay.yml's variables for one build, refused above `limit` bytes."""
    extravars = {"left4me_overlay_id": overlay.id, "left4me_overlay_state": "present",
                 "left4me_overlay_incarnation": overlay.incarnation,
                 "left4me_overlay_revision": overlay.revision, "left4me_overlay_files": spec}
    size = len(json.dumps(extravars).encode())
    if size > limit:
        raise OverlayError(f"overlay {overlay.id!r} is {size_text(size)} as a build's variables;"
                           f" a build sends at most {size_text(limit)}. Make it smaller (big files"
                           " belong in a Workshop or script overlay)")
    return extravars


def enqueue_build(conn: sqlite3.Connection, core: Core, me: Actor, overlay: Overlay,
                  host: str) -> int:
    """The files kind's builder: the overlay's files as the job's variables."""
    require_kind(overlay, "files")
    with opened_dir(tree_dir(core, overlay.id)) as root_fd:
        spec = _spec(root_fd)
    limit = min(MAX_BUILD_BYTES, core.settings.overlay_max_total_bytes)
    return jobs.enqueue(conn, core, me, kind=KIND_BUILD, host=host,
                        target=f"{host}/overlay {overlay.id} r{overlay.revision}",
                        playbook=BUILD_PLAYBOOK, extravars=build_vars(overlay, spec, limit),
                        alike=BUILD_ALIKE)

