"""User-owned overlays: rows like blueprints, and for kind `files` a tree under the state dir.

An overlay id is the directory name on every host (`{state_dir}/overlays/{id}`), so it
follows the collection's id rule (imported, not copied) and is unique across all users
and the inventory's own `overlays_list`. An id never comes back: deleting an overlay
retires its id, so a later overlay of that name cannot read the old one's build logs or
inherit its host directory and build records. Each overlay also has an incarnation (a
random token) that its build and remove jobs carry, so a job of an overlay that shared the
id before ids were retired is never taken for this one's, and a host directory marked by
another incarnation is refused.

A files overlay's tree is `Settings.overlays_dir / id` (directories 0700, files 0600: the
UI's state is private). Every path a person gives stays inside it: absolute paths, `.`,
`..`, empty components, NUL, line breaks and backslashes are refused, and the tree is
walked one directory file descriptor at a time with O_NOFOLLOW, so a symbolic link
(none is ever created here) is refused, never followed. Files are written to a temp file
and renamed into place, so a write never goes through an existing name.

Limits (`Settings.overlay_max_*`) are checked before anything changes. A zip import is
extracted into a staging directory (checking declared sizes, then counting the bytes
actually written, since headers can lie), and only a complete, within-limits tree is
swapped in with one atomic rename exchange; a refused archive leaves the tree as it was.

Every change runs inside one database transaction (which also serialises changes across
processes), bumps the overlay's revision and writes an audit row.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import io
import json
import os
import secrets
import shutil
import sqlite3
import stat
import tempfile
import time
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ansible_collections.left4me.l4d2.plugins.module_utils._common import ID_RULE, validate_id
from ansible_collections.left4me.l4d2.plugins.module_utils._files_overlay import (
    FilesOverlayError,
    validate_dest,
)

from left4me_ui import audit, authz, disk_share, jobs
from left4me_ui.authz import Actor, NotFound
from left4me_ui.blueprints import InUse
from left4me_ui.core import Core
from left4me_ui.refusal import Refusal

__all__ = ["ID_RULE", "OverlayError"]  # ID_RULE: the collection's id rule in words (pages)

KINDS = ("files", "workshop", "script")
BUILDABLE_KINDS = ("files", "workshop", "script")
FILE_MODE = "0644"  # what the files_overlay module writes on the host (the game only reads)
# A zip entry that declares more than this many times its compressed size is refused as a
# bomb (real game files compress a few-fold; deflate's own ceiling is about 1032:1). Small
# entries are exempt: their size limits bound them anyway.
MAX_COMPRESSION_RATIO = 200
RATIO_EXEMPT_BYTES = 1024 * 1024
_CHUNK = 1024 * 1024
_TMP_PREFIX = ".left4me-tmp-"
# A path is at most this many folders and names deep and this many bytes long: deeper
# trees cost a file descriptor per level to walk and no game needs them.
MAX_PATH_PARTS = 32
MAX_PATH_BYTES = 1024
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class OverlayError(Refusal):
    """Bad input or a refused change; nothing was changed and the message is safe to show."""


@dataclass(frozen=True)
class Overlay:
    id: str
    owner_id: int
    owner_name: str
    kind: str
    revision: int
    created_at: float
    updated_at: float
    used_by: tuple[str, ...] = ()  # names of the blueprints stacking it the viewer may see
    used_by_others: int = 0  # how many more stack it: other users' (their names are theirs)
    incarnation: str = ""  # random, this overlay's alone (build and remove jobs carry it)

    @property
    def in_use(self) -> bool:
        return bool(self.used_by) or self.used_by_others > 0

    def used_by_text(self, quoted: bool = True) -> str:
        """"'coop', 'versus' and 2 blueprints of other users", or "" when unused."""
        named = ", ".join(repr(name) if quoted else name for name in self.used_by)
        if self.used_by_others:
            others = self.used_by_others
            named = (f"{named} and " if named else "") + \
                f"{others} blueprint{'s' if others > 1 else ''} of other users"
        return named


@dataclass(frozen=True)
class Entry:
    """One thing in the tree; `is_symlink` marks one planted from outside (delete it), and
    `too_deep` a folder holding more than MAX_PATH_PARTS levels (made before that limit;
    its content is not walked: delete it)."""

    path: str
    size: int
    is_dir: bool
    is_symlink: bool = False
    too_deep: bool = False

    @property
    def refused(self) -> bool:
        return self.is_symlink or self.too_deep


@dataclass(frozen=True)
class Usage:
    total_bytes: int
    entries: int


# --- paths --------------------------------------------------------------------------------


def check_path(path: object, what: str = "path", shown: str | None = None
               ) -> tuple[str, ...]:
    """A path relative to the overlay that cannot leave it, as its components; messages
    start with `shown` (else what and the path)."""
    if not isinstance(path, str) or not path:
        raise OverlayError(f"give the {shown or what} inside the overlay, e.g."
                           " left4dead2/cfg/server.cfg")
    label = shown or f"{what} {_short(path)!r}"
    if "\0" in path:
        raise OverlayError(f"{label} contains a NUL byte")
    if "\n" in path or "\r" in path:
        raise OverlayError(f"{label} contains a line break")
    if "\\" in path:
        raise OverlayError(f"{label} contains a backslash; separate folders with '/'")
    if path.startswith("/"):
        raise OverlayError(f"{label} is absolute; give it relative to the overlay"
                           " (the game root), e.g. left4dead2/cfg/server.cfg")
    parts = tuple(path.split("/"))
    if len(parts) > MAX_PATH_PARTS:
        raise OverlayError(f"{label} is {len(parts)} levels deep; a path in an overlay has at"
                           f" most {MAX_PATH_PARTS} folders and names")
    if len(path.encode()) > MAX_PATH_BYTES:
        raise OverlayError(f"{label} is {len(path.encode())} bytes long; a path in an overlay"
                           f" is at most {MAX_PATH_BYTES} bytes")
    if any(part in ("", ".", "..") for part in parts):
        raise OverlayError(f"{label} has an empty, '.' or '..' component; paths stay"
                           " inside the overlay")
    if any(len(part.encode()) > 255 for part in parts):
        raise OverlayError(f"{label} has a name longer than 255 bytes")
    if parts[-1].startswith(_TMP_PREFIX):
        raise OverlayError(f"{label}: names starting {_TMP_PREFIX!r} are left4me's own")
    try:
        validate_dest(path)  # the host's own rule too (e.g. its manifest's name)
    except FilesOverlayError as exc:
        raise OverlayError(f"{label}: {exc}") from None
    return parts


def _short(path: str) -> str:
    """A path for a message: a very long one by its start and end."""
    return path if len(path) <= 120 else f"{path[:60]}...{path[-40:]}"


def _lstat(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _open_dir(dir_fd: int, name: str, shown: str) -> int:
    info = _lstat(dir_fd, name)
    if info is None:
        raise OverlayError(f"{shown} does not exist")
    _require_dir(info, shown)
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:  # replaced between the lstat and the open: still never followed
        raise OverlayError(f"{shown} cannot be opened as a folder ({exc.strerror})") from None


def _require_dir(info: os.stat_result, shown: str) -> None:
    if stat.S_ISLNK(info.st_mode):
        raise OverlayError(f"{shown} is a symbolic link; left4me never follows one (delete it)")
    if not stat.S_ISDIR(info.st_mode):
        raise OverlayError(f"{shown} is a file, not a folder")


def _missing_dirs(root_fd: int, parts: tuple[str, ...]) -> int:
    """How many folders on the way to parts[-1] do not exist yet (refusing links and files)."""
    fd = os.dup(root_fd)
    try:
        for depth, name in enumerate(parts[:-1]):
            shown = "/".join(parts[:depth + 1])
            info = _lstat(fd, name)
            if info is None:
                return len(parts) - 1 - depth
            _require_dir(info, shown)
            next_fd = _open_dir(fd, name, shown)
            os.close(fd)
            fd = next_fd
        return 0
    finally:
        os.close(fd)


def _open_file(root_fd: int, path: str):
    """A file of the tree (a path _scan found), opened for reading without following links."""
    parts = tuple(path.split("/"))
    parent = _parent(root_fd, parts)
    try:
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    finally:
        os.close(parent)
    return os.fdopen(fd, "rb")


def _parent(root_fd: int, parts: tuple[str, ...], create: bool = False) -> int:
    """An fd of parts[-1]'s folder, walked without following links; the caller closes it."""
    fd = os.dup(root_fd)
    try:
        for depth, name in enumerate(parts[:-1]):
            shown = "/".join(parts[:depth + 1])
            if create and _lstat(fd, name) is None:
                os.mkdir(name, 0o700, dir_fd=fd)
            next_fd = _open_dir(fd, name, shown)
            os.close(fd)
            fd = next_fd
        return fd
    except BaseException:
        os.close(fd)
        raise


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[int]:
    fd = os.open(path, _DIR_FLAGS)
    try:
        yield fd
    finally:
        os.close(fd)


def _children(dir_fd: int) -> list[tuple[str, os.stat_result]]:
    """A folder's entries (never followed) by name, without left4me's temp files (a write
    in flight or one a crash left: never shown or counted)."""
    with os.scandir(dir_fd) as found:
        children = [(e.name, e.stat(follow_symlinks=False)) for e in found
                    if not e.name.startswith(_TMP_PREFIX)]
    return sorted(children, key=lambda child: child[0])


def _scan(dir_fd: int) -> Iterator[Entry]:
    """Every entry below dir_fd, folders before their content, by name; walked with a stack
    (a deep tree never exhausts Python's recursion) at most MAX_PATH_PARTS levels deep."""
    stack: list[tuple[int, str, Iterator[tuple[str, os.stat_result]]]] = [
        (dir_fd, "", iter(_children(dir_fd)))]
    try:
        while stack:
            fd, prefix, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                if fd != dir_fd:
                    os.close(fd)
                continue
            name, info = child
            path = f"{prefix}{name}"
            if stat.S_ISLNK(info.st_mode) or not (stat.S_ISDIR(info.st_mode)
                                                  or stat.S_ISREG(info.st_mode)):
                yield Entry(path, 0, False, True)
            elif not stat.S_ISDIR(info.st_mode):
                yield Entry(path, info.st_size, False)
            else:
                sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
                try:
                    below = _children(sub)
                except BaseException:
                    os.close(sub)
                    raise
                if len(stack) >= MAX_PATH_PARTS and below:
                    os.close(sub)
                    yield Entry(path, 0, True, too_deep=True)
                    continue
                stack.append((sub, path + "/", iter(below)))
                yield Entry(path, 0, True)
    finally:
        for fd, _prefix, _children_left in stack:
            if fd != dir_fd:
                os.close(fd)


def _remove_tree(parent_fd: int, name: str) -> None:
    """Remove a folder and everything in it, never following a link, with two descriptors
    and no recursion however deep it is: each subfolder's content moves up one level (one
    rename carries a whole subtree), then the emptied subfolder goes."""
    top = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    try:
        while True:
            with os.scandir(top) as found:
                children = [(e.name, e.is_dir(follow_symlinks=False)) for e in found]
            if not children:
                break
            for child, is_dir in children:
                if not is_dir:
                    os.unlink(child, dir_fd=top)
                    continue
                sub = os.open(child, _DIR_FLAGS, dir_fd=top)
                try:
                    with os.scandir(sub) as found:
                        below = [e.name for e in found]
                    for grandchild in below:
                        os.rename(grandchild, f".left4me-gone-{secrets.token_hex(8)}",
                                  src_dir_fd=sub, dst_dir_fd=top)
                finally:
                    os.close(sub)
                os.rmdir(child, dir_fd=top)
    finally:
        os.close(top)
    os.rmdir(name, dir_fd=parent_fd)


def _usage(entries: list[Entry]) -> Usage:
    return Usage(sum(e.size for e in entries), len(entries))


def _refuse_links(entries: list[Entry], doing: str) -> None:
    links = [e.path for e in entries if e.is_symlink]
    if links:
        raise OverlayError(f"cannot {doing}: {', '.join(links)} is a symbolic link or special"
                           " file left4me did not make; delete it first")
    deep = [e.path for e in entries if e.too_deep]
    if deep:
        raise OverlayError(f"cannot {doing}: {', '.join(deep)} holds folders more than"
                           f" {MAX_PATH_PARTS} levels deep; delete it first")


def _write_file(parent_fd: int, name: str, data: bytes | Iterator[bytes], cap: int,
                too_big: str) -> int:
    """Write data to a new temp file and rename it onto name; more than cap bytes: refused."""
    tmp = f"{_TMP_PREFIX}{secrets.token_hex(8)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600, dir_fd=parent_fd)
    written = 0
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in ([data] if isinstance(data, bytes) else data):
                written += len(chunk)
                if written > cap:  # counted as written, whatever a header declared
                    raise OverlayError(too_big)
                handle.write(chunk)
        os.rename(tmp, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=parent_fd)
        raise
    return written


def size_text(n: int) -> str:
    """Bytes as a person reads them: 512 bytes, 67.0 KiB, 64.0 MiB."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)  # not reached


# --- rows ------------------------------------------------------------------------------------


def _used_by(conn: sqlite3.Connection, overlay_id: str) -> list[tuple[int, str]]:
    """(owner_id, name) of every blueprint stacking the overlay, whoever owns it."""
    rows = conn.execute("SELECT owner_id, name, overlays FROM blueprints ORDER BY name")
    return [(r["owner_id"], r["name"]) for r in rows if overlay_id in json.loads(r["overlays"])]


def _from_row(conn: sqlite3.Connection, row: sqlite3.Row, viewer: Actor) -> Overlay:
    """The overlay as `viewer` sees it: other users' blueprints stacking it are counted,
    not named."""
    users = _used_by(conn, row["id"])
    named = tuple(name for owner, name in users if authz.may_view(viewer, owner))
    return Overlay(row["id"], row["owner_id"], row["owner_name"], row["kind"], row["revision"],
                   row["created_at"], row["updated_at"], named, len(users) - len(named),
                   row["incarnation"])


def of_this_incarnation(overlay_id: str, incarnation: str, created_at: float,
                        extravars: dict, queued_at: float) -> bool:
    """Whether a build or remove job (its extravars, when it was queued) is this overlay's,
    not one of an earlier overlay of the same id (ids were reused before they were retired:
    such a job carries no incarnation and was queued before this overlay was created)."""
    if extravars.get("left4me_overlay_id") != overlay_id:
        return False
    carried = extravars.get("left4me_overlay_incarnation")
    if carried is not None:
        return carried == incarnation
    return queued_at >= created_at


_SELECT = ("SELECT overlays.*, users.name AS owner_name FROM overlays"
           " JOIN users ON users.id = overlays.owner_id")


def load(conn: sqlite3.Connection, actor: Actor, overlay_id: str) -> Overlay:
    """One overlay the (already checked) actor may manage, else NotFound."""
    row = conn.execute(f"{_SELECT} WHERE overlays.id = ?", (overlay_id,)).fetchone()
    if row is None or not authz.may_view(actor, row["owner_id"]) \
            or not authz.may_manage(actor, row["owner_id"]):
        raise NotFound("no such overlay")
    return _from_row(conn, row, actor)


def _root(core: Core, overlay_id: str) -> Path:
    return core.settings.overlays_dir / validate_id(overlay_id, "overlay id", OverlayError)


@contextlib.contextmanager
def _change(core: Core, actor: Actor, overlay_id: str, action: str, target: str
            ) -> Iterator[tuple[Actor, Overlay, int]]:
    """Load and authorise the overlay, yield its tree's fd; on success bump and audit."""
    now = core.clock()
    with core.db.connect() as conn:
        me = authz.current(conn, actor)
        overlay = load(conn, me, overlay_id)
        _require_files(overlay)
        try:
            with _opened(_root(core, overlay_id)) as root_fd:
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
def _reading(core: Core, actor: Actor, overlay_id: str) -> Iterator[int]:
    with core.db.connect() as conn:
        overlay = load(conn, authz.current(conn, actor), overlay_id)
        _require_files(overlay)
        with _opened(_root(core, overlay_id)) as root_fd:
            yield root_fd


def _require_files(overlay: Overlay) -> None:
    if overlay.kind != "files":
        raise OverlayError(f"overlay {overlay.id!r} is a {overlay.kind} overlay, not a files"
                           " overlay")


def create(core: Core, actor: Actor, overlay_id: str, kind: str = "files") -> Overlay:
    """A new, empty overlay owned by the actor."""
    validate_id(overlay_id, "overlay id", OverlayError)
    if kind not in BUILDABLE_KINDS:
        raise OverlayError(f"overlay kind must be one of {', '.join(BUILDABLE_KINDS)}"
                           f" (for now), got {kind!r}")
    inventory = core.inventory()
    declared = [h for h in inventory.hosts if overlay_id in inventory.overlay_ids(h)]
    if declared:
        raise OverlayError(f"the inventory declares overlay {overlay_id!r} (on"
                           f" {', '.join(declared)}); pick another id")
    now = core.clock()
    with core.db.connect() as conn:
        me = authz.current(conn, actor)
        if conn.execute("SELECT 1 FROM retired_overlay_ids WHERE id = ?",
                        (overlay_id,)).fetchone() is not None:
            raise OverlayError(f"overlay id {overlay_id!r} belonged to an overlay that was"
                               " deleted; an id never comes back (its build logs and host"
                               " files were another overlay's), so pick another")
        disk_share.require_room(conn, core.settings, inventory, me, disk_share.Holding(
            f"{disk_share.KIND_WORDS[kind]} {overlay_id!r}", disk_share.overlay_cap(
                core.settings, kind)))
        try:
            conn.execute("INSERT INTO overlays (id, owner_id, kind, incarnation, created_at,"
                         " updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                         (overlay_id, me.user_id, kind, secrets.token_hex(8), now, now))
        except sqlite3.IntegrityError:
            raise OverlayError(f"overlay id {overlay_id!r} is taken; pick another") from None
        core.settings.overlays_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            os.mkdir(_root(core, overlay_id), 0o700)
        except FileExistsError:
            raise OverlayError(f"a folder for overlay {overlay_id!r} is left in"
                               f" {core.settings.overlays_dir}; an admin must remove it"
                               " first") from None
        audit.record(conn, now, me.name, "create overlay", f"overlay {overlay_id}", "ok")
        return load(conn, me, overlay_id)


def get(core: Core, actor: Actor, overlay_id: str) -> Overlay:
    with core.db.connect() as conn:
        return load(conn, authz.current(conn, actor), overlay_id)


def list_for(core: Core, actor: Actor) -> list[Overlay]:
    """The actor's overlays (an admin sees everyone's)."""
    with core.db.connect() as conn:
        me = authz.current(conn, actor)
        where, params = authz.visible_owner_clause(me)
        rows = conn.execute(f"{_SELECT} WHERE {where.replace('owner_id', 'overlays.owner_id')}"
                            " ORDER BY overlays.id", params).fetchall()
        return [_from_row(conn, r, me) for r in rows]


def delete(core: Core, actor: Actor, overlay_id: str) -> None:
    """Delete an overlay and its tree; InUse while any blueprint stacks it. Each host it
    was built on gets an "overlay remove" job (playbooks/overlay.yml, state absent)."""
    now = core.clock()
    with core.db.connect() as conn:
        me = authz.current(conn, actor)
        overlay = load(conn, me, overlay_id)
        if overlay.in_use:
            raise InUse(f"overlay {overlay_id!r} is used by blueprint {overlay.used_by_text()};"
                        " take it out of them first")
        for host in _hosts_with(conn, overlay):
            # After any build queued there (jobs on a host run in order); the playbook
            # refuses while a server of the host still stacks the directory.
            jobs.enqueue(conn, core, me, kind=KIND_REMOVE, host=host,
                         target=f"{host}/overlay {overlay_id}", playbook=BUILD_PLAYBOOK,
                         extravars={"left4me_overlay_id": overlay_id,
                                    "left4me_overlay_incarnation": overlay.incarnation,
                                    "left4me_overlay_state": "absent"})
        conn.execute("DELETE FROM overlays WHERE id = ?", (overlay_id,))
        conn.execute("INSERT OR IGNORE INTO retired_overlay_ids (id, retired_at) VALUES (?, ?)",
                     (overlay_id, now))
        root = _root(core, overlay_id)
        trash = None
        if root.exists() or root.is_symlink():
            core.settings.overlays_staging_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            trash = (core.settings.overlays_staging_dir
                     / f"deleted-{overlay_id}-{secrets.token_hex(4)}")
            os.rename(root, trash)  # gone at once; removed below, after the commit
        audit.record(conn, now, me.name, "delete overlay", f"overlay {overlay.id}", "ok")
    if trash is not None:
        with contextlib.suppress(OSError), _opened(trash.parent) as staging_fd:
            _remove_tree(staging_fd, trash.name)


# --- the tree --------------------------------------------------------------------------------


def tree(core: Core, actor: Actor, overlay_id: str) -> list[Entry]:
    """Every folder and file, sorted by path (a planted link shows with is_symlink)."""
    with _reading(core, actor, overlay_id) as root_fd:
        return list(_scan(root_fd))


def usage(core: Core, actor: Actor, overlay_id: str) -> Usage:
    return _usage(tree(core, actor, overlay_id))


def read_bytes(core: Core, actor: Actor, overlay_id: str, path: str) -> bytes:
    parts = check_path(path)
    with _reading(core, actor, overlay_id) as root_fd:
        parent = _parent(root_fd, parts)
        try:
            info = _lstat(parent, parts[-1])
            if info is None:
                raise OverlayError(f"{path} does not exist")
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
    with _change(core, actor, overlay_id, action, path) as (_me, _overlay, root_fd):
        current = _usage(list(_scan(root_fd)))
        new_dirs = _missing_dirs(root_fd, parts)
        old_size, exists = 0, False
        if not new_dirs:
            parent = _parent(root_fd, parts)
            try:
                info = _lstat(parent, parts[-1])
            finally:
                os.close(parent)
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
        entries = current.entries + new_dirs + (0 if exists else 1)
        if entries > limits.overlay_max_entries:
            raise OverlayError(f"{path} would make the overlay {entries} files and folders;"
                               f" the most it may hold is {limits.overlay_max_entries}")
        parent = _parent(root_fd, parts, create=True)
        try:
            _write_file(parent, parts[-1], data, limits.overlay_max_file_bytes,
                        f"{path} is over the file size limit")
        finally:
            os.close(parent)


def make_folder(core: Core, actor: Actor, overlay_id: str, path: str) -> None:
    parts = check_path(path)
    with _change(core, actor, overlay_id, "make overlay folder", path) as (_me, _o, root_fd):
        current = _usage(list(_scan(root_fd)))
        parent_missing = _missing_dirs(root_fd, parts)
        if not parent_missing:
            parent = _parent(root_fd, parts)
            try:
                if _lstat(parent, parts[-1]) is not None:
                    raise OverlayError(f"{path} exists already")
            finally:
                os.close(parent)
        entries = current.entries + parent_missing + 1
        if entries > core.settings.overlay_max_entries:
            raise OverlayError(f"{path} would make the overlay {entries} files and folders;"
                               f" the most it may hold is {core.settings.overlay_max_entries}")
        parent = _parent(root_fd, parts, create=True)
        try:
            os.mkdir(parts[-1], 0o700, dir_fd=parent)
        finally:
            os.close(parent)


def move(core: Core, actor: Actor, overlay_id: str, source: str, destination: str) -> None:
    """Rename or move a file or folder; never over an existing name."""
    src, dst = check_path(source, "source"), check_path(destination, "destination")
    if dst[:len(src)] == src:
        raise OverlayError(f"cannot move {source} into itself ({destination})")
    with _change(core, actor, overlay_id, "move overlay path",
                 f"{source} -> {destination}") as (_me, _o, root_fd):
        src_parent = _parent(root_fd, src)
        try:
            info = _lstat(src_parent, src[-1])
            if info is None:
                raise OverlayError(f"{source} does not exist")
            if stat.S_ISLNK(info.st_mode):
                raise OverlayError(f"{source} is a symbolic link; delete it instead")
            if stat.S_ISDIR(info.st_mode):  # what it holds lands deeper: within the limits too
                moved = _open_dir(src_parent, src[-1], source)
                try:
                    for entry in _scan(moved):
                        check_path(f"{destination}/{entry.path}",
                                   shown=f"moving {source} to {destination} makes"
                                         f" {destination}/{entry.path}, which")
                finally:
                    os.close(moved)
            new_dirs = _missing_dirs(root_fd, dst)
            entries = _usage(list(_scan(root_fd))).entries + new_dirs
            if entries > core.settings.overlay_max_entries:
                raise OverlayError(f"moving would make the overlay {entries} files and folders;"
                                   " the most it may hold is"
                                   f" {core.settings.overlay_max_entries}")
            if not new_dirs:
                dst_parent = _parent(root_fd, dst)
                try:
                    if _lstat(dst_parent, dst[-1]) is not None:
                        raise OverlayError(f"{destination} exists already; delete or rename it"
                                           " first")
                finally:
                    os.close(dst_parent)
            dst_parent = _parent(root_fd, dst, create=True)
            try:
                os.rename(src[-1], dst[-1], src_dir_fd=src_parent, dst_dir_fd=dst_parent)
            finally:
                os.close(dst_parent)
        finally:
            os.close(src_parent)


def remove(core: Core, actor: Actor, overlay_id: str, path: str) -> None:
    """Delete a file, a folder with everything in it, or a planted link (not what it points to)."""
    parts = check_path(path)
    with _change(core, actor, overlay_id, "delete overlay path", path) as (_me, _o, root_fd):
        parent = _parent(root_fd, parts)
        try:
            info = _lstat(parent, parts[-1])
            if info is None:
                raise OverlayError(f"{path} does not exist")
            if stat.S_ISDIR(info.st_mode):
                _remove_tree(parent, parts[-1])  # fd based: never follows a link
            else:
                os.unlink(parts[-1], dir_fd=parent)
        finally:
            os.close(parent)


# --- zip -------------------------------------------------------------------------------------


def export_zip(core: Core, actor: Actor, overlay_id: str) -> bytes:
    """The whole tree as a zip (folders included, so empty ones survive a round trip)."""
    buffer = io.BytesIO()
    with _reading(core, actor, overlay_id) as root_fd:
        entries = list(_scan(root_fd))
        _refuse_links(entries, "export the overlay")
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for entry in entries:
                stamp = time.localtime(core.clock())[:6]
                if entry.is_dir:
                    info = zipfile.ZipInfo(entry.path + "/", stamp)
                    info.external_attr = (stat.S_IFDIR | 0o755) << 16
                    archive.writestr(info, b"")
                    continue
                info = zipfile.ZipInfo(entry.path, stamp)
                info.external_attr = (stat.S_IFREG | 0o644) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                with _open_file(root_fd, entry.path) as source, \
                        archive.open(info, "w") as target:
                    shutil.copyfileobj(source, target, _CHUNK)
    return buffer.getvalue()


@dataclass(frozen=True)
class _Source:
    """How refusals name what is imported: a zip's entries, or files uploaded together."""
    entry: str
    whole: str


_ZIP = _Source("zip entry", "the zip")
_UPLOAD = _Source("uploaded file", "the upload")


@dataclass(frozen=True)
class _ZipEntry:
    info: zipfile.ZipInfo
    parts: tuple[str, ...]
    is_dir: bool


def _zip_plan(archive: zipfile.ZipFile, core: Core, budget: int, words: _Source
              ) -> list[_ZipEntry]:
    """Every entry checked from the central directory, before anything is extracted."""
    limits = core.settings
    infos = archive.infolist()
    if len(infos) > limits.overlay_max_entries:
        raise OverlayError(f"{words.whole} holds {len(infos)} entries; the most an overlay may"
                           f" hold is {limits.overlay_max_entries}")
    planned, seen, declared = [], set(), 0
    for info in infos:
        name = info.orig_filename  # before zipfile cut it at a NUL
        shown = f"{words.entry} {name!r}"
        is_dir = name.endswith("/")
        parts = check_path(name[:-1] if is_dir else name, words.entry, shown)
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind == stat.S_IFLNK:
            raise OverlayError(f"{shown} is a symbolic link; links are refused")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise OverlayError(f"{shown} is not a file or folder; refused")
        if info.flag_bits & 0x1:
            raise OverlayError(f"{shown} is encrypted; upload an unencrypted zip")
        if parts in seen:
            raise OverlayError(f"{shown} is in {words.whole} twice")
        seen.add(parts)
        if not is_dir:
            if info.file_size > limits.overlay_max_file_bytes:
                raise OverlayError(f"{shown} is {size_text(info.file_size)}; the most one file may"
                                   f" be is {size_text(limits.overlay_max_file_bytes)}")
            if info.file_size > RATIO_EXEMPT_BYTES and \
                    info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
                raise OverlayError(f"{shown} expands {info.file_size // max(info.compress_size, 1)}"
                                   f"-fold ({size_text(info.file_size)}); refused as a zip bomb")
            declared += info.file_size
            if declared > budget:
                raise OverlayError(f"{words.whole}'s files add up to more than the"
                                   f" {size_text(limits.overlay_max_total_bytes)} an overlay may"
                                   f" hold (at {shown})")
        planned.append(_ZipEntry(info, parts, is_dir))
    return planned


def _link_copy(src_fd: int, dst_fd: int) -> None:
    """Copy a tree as hard links (cheap; every later write renames a new file into place,
    so the original's files are never written through a link)."""
    with os.scandir(src_fd) as found:
        children = list(found)
    for child in children:
        if child.name.startswith(_TMP_PREFIX):
            continue
        info = child.stat(follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode):
            os.mkdir(child.name, 0o700, dir_fd=dst_fd)
            sub_src = os.open(child.name, _DIR_FLAGS, dir_fd=src_fd)
            sub_dst = os.open(child.name, _DIR_FLAGS, dir_fd=dst_fd)
            try:
                _link_copy(sub_src, sub_dst)
            finally:
                os.close(sub_src)
                os.close(sub_dst)
        else:  # regular: _refuse_links ran first
            os.link(child.name, child.name, src_dir_fd=src_fd, dst_dir_fd=dst_fd,
                    follow_symlinks=False)


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    while chunk := stream.read(_CHUNK):
        yield chunk


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> None:
    """Swap two directories in one step (renameat2 RENAME_EXCHANGE): a reader sees the old
    tree or the new one, never none."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is not None:
        if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b),
                     _RENAME_EXCHANGE) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.ENOSYS, errno.EINVAL):
            raise OSError(code, os.strerror(code), str(a))
    # No exchange here (old kernel or file system): two renames, a moment without a tree.
    aside = a.with_name(a.name + ".swap")
    os.rename(a, aside)
    os.rename(b, a)
    os.rename(aside, b)


def import_zip(core: Core, actor: Actor, overlay_id: str, archive: bytes | BinaryIO, *,
               replace: bool = False) -> int:
    """Extract a zip into the overlay (its files replace same-named ones; with replace the
    overlay holds only the zip's content). Returns the number of files written. Traversal,
    absolute, link and encrypted entries, and anything over a limit, are refused with the
    entry named, and the tree is left exactly as it was."""
    source = io.BytesIO(archive) if isinstance(archive, bytes) else archive
    return _import(core, actor, overlay_id, source, replace, _ZIP, "import overlay zip",
                   "replace" if replace else "merge")


def upload_files(core: Core, actor: Actor, overlay_id: str,
                 files: Sequence[tuple[str, bytes]], into: str = "") -> int:
    """Store files together, each at its path below `into` (a folder as a browser sends it:
    "maps/cfg/x.cfg" for a folder "maps"), replacing same-named ones. All or nothing: one
    refused path or limit names the file and leaves the overlay exactly as it was. Returns
    the number of files written."""
    folder = into.strip("/")
    prefix = "/".join(check_path(folder, "folder")) + "/" if folder else ""
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w", zipfile.ZIP_STORED) as archive:
        seen = set()
        for path, data in files:  # each checked as the import plans them, before any write
            if prefix + path in seen:  # (zipfile would only warn)
                raise OverlayError(f"{_UPLOAD.entry} {path!r} is in {_UPLOAD.whole} twice")
            seen.add(prefix + path)
            archive.writestr(prefix + path, data)
    packed.seek(0)
    return _import(core, actor, overlay_id, packed, False, _UPLOAD, "upload overlay files",
                   f"{len(files)} file(s) into /{prefix}")


def _import(core: Core, actor: Actor, overlay_id: str, source: BinaryIO, replace: bool,
            words: _Source, action: str, detail: str) -> int:
    limits = core.settings
    with _change(core, actor, overlay_id, action, detail) as (_me, _o, root_fd):
        current = list(_scan(root_fd))
        if not replace:
            _refuse_links(current, "import into the overlay")
        base = 0 if replace else _usage(current).total_bytes
        try:
            opened = zipfile.ZipFile(source)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
            raise OverlayError(f"this is not a zip archive left4me can read ({exc})") from None
        with opened:
            # Replaced files give their bytes back, so the declared check is on the zip alone;
            # the tree as extracted is checked against the real limit below.
            planned = _zip_plan(opened, core, limits.overlay_max_total_bytes, words)
            limits.overlays_staging_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f"import-{overlay_id}-",
                                            dir=limits.overlays_staging_dir))
            try:
                written = _extract(opened, planned, staging, root_fd, replace, base, core,
                                   words)
                _exchange(_root(core, overlay_id), staging)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return written


def _extract(archive: zipfile.ZipFile, planned: list[_ZipEntry], staging: Path, root_fd: int,
             replace: bool, base: int, core: Core, words: _Source) -> int:
    limits = core.settings
    written_files, total = 0, base
    with _opened(staging) as stage_fd:
        if not replace:
            _link_copy(root_fd, stage_fd)
        for entry in planned:
            shown = f"{words.entry} {entry.info.orig_filename!r}"
            try:
                parent = _parent(stage_fd, entry.parts, create=True)
            except OverlayError as exc:
                raise OverlayError(f"{shown}: {exc}") from None
            try:
                info = _lstat(parent, entry.parts[-1])
                if entry.is_dir:
                    if info is None:
                        os.mkdir(entry.parts[-1], 0o700, dir_fd=parent)
                    elif not stat.S_ISDIR(info.st_mode):
                        raise OverlayError(f"{shown} is a folder but the overlay has a file"
                                           " there")
                    continue
                if info is not None and not stat.S_ISREG(info.st_mode):
                    raise OverlayError(f"{shown} is a file but the overlay has a folder there")
                total -= info.st_size if info is not None else 0
                # Never more than the entry declared, the file limit or what the overlay has
                # left: counted as written, since a header can lie.
                room = limits.overlay_max_total_bytes - total
                cap = min(entry.info.file_size, limits.overlay_max_file_bytes, room)
                if cap == room and room < entry.info.file_size:
                    most = size_text(limits.overlay_max_total_bytes)
                    too_big = (f"{shown} would make the overlay more than {most}, the most it"
                               " may hold")
                else:
                    too_big = (f"{shown} holds more than its header declares; refused as a"
                               " zip bomb")
                try:
                    with archive.open(entry.info) as stream:
                        total += _write_file(parent, entry.parts[-1], _chunks(stream), cap,
                                             too_big)
                except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
                    raise OverlayError(f"{shown} is damaged or lies about its size ({exc});"
                                       " nothing was changed") from None
                written_files += 1
            finally:
                os.close(parent)
        final = _usage(list(_scan(stage_fd)))
    if final.entries > limits.overlay_max_entries:
        raise OverlayError(f"the overlay would hold {final.entries} files and folders; the most"
                           f" it may hold is {limits.overlay_max_entries}")
    if final.total_bytes > limits.overlay_max_total_bytes:
        raise OverlayError(f"the overlay would hold {size_text(final.total_bytes)}; the most it may"
                           f" hold is {size_text(limits.overlay_max_total_bytes)}")
    return written_files


# --- what a build hands the collection ---------------------------------------------------------


def files_spec(core: Core, actor: Actor, overlay_id: str) -> list[dict[str, str]]:
    """The overlay as the `files` option of left4me.l4d2.files_overlay (and the overlays
    role's `kind: files` entry): `[{dest, content, mode}]`, every file, sorted by dest. The
    module writes text only, so a file that is not UTF-8 is refused by name."""
    with _reading(core, actor, overlay_id) as root_fd:
        return _spec(root_fd)


def _spec(root_fd: int) -> list[dict[str, str]]:
    spec = []
    entries = list(_scan(root_fd))
    _refuse_links(entries, "build the overlay")
    for entry in entries:
        if entry.is_dir:
            continue
        with _open_file(root_fd, entry.path) as handle:
            data = handle.read()
        try:
            content = data.decode("utf-8")
        except UnicodeDecodeError:
            raise OverlayError(f"{entry.path} is not UTF-8 text; a files overlay holds text"
                               " only (the host's files_overlay module writes text)") from None
        spec.append({"dest": entry.path, "content": content, "mode": FILE_MODE})
    return spec


# --- builds: the overlay on a host (playbooks/overlay.yml jobs) -----------------------------

BUILD_PLAYBOOK = "overlay.yml"
KIND_BUILD, KIND_REMOVE = "overlay build", "overlay remove"
# The build's extravars that tell its task count: BUILD_PLAYBOOK builds files and scripts
# (absent: files), which report different counts (jobs.expected_tasks).
BUILD_ALIKE = ("left4me_overlay_kind",)
# A build's files travel as the job's extravars (stored in the job row, handed to ansible
# as one JSON file, and to AWX in one request), so they are bounded: the smaller of this
# and the overlay's own limit. Bigger content belongs in a script or Workshop overlay.
MAX_BUILD_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Build:
    """What the last successful build put on a host."""

    host: str
    revision: int
    built_at: float
    current: bool  # the host has the overlay's latest revision


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


def _enqueue_build(conn: sqlite3.Connection, core: Core, me: Actor, overlay: Overlay,
                   host: str) -> int:
    """Queue one build of the overlay as it is now (read under the caller's transaction,
    which every change also takes, so the files and the revision agree), by the builder
    boot.py declares for its kind."""
    return core.wiring.builders[overlay.kind](conn, core, me, overlay, host)


def enqueue_files_build(conn: sqlite3.Connection, core: Core, me: Actor, overlay: Overlay,
                        host: str) -> int:
    """The files kind's builder: the overlay's files as the job's variables."""
    _require_files(overlay)
    with _opened(_root(core, overlay.id)) as root_fd:
        spec = _spec(root_fd)
    limit = min(MAX_BUILD_BYTES, core.settings.overlay_max_total_bytes)
    return jobs.enqueue(conn, core, me, kind=KIND_BUILD, host=host,
                        target=f"{host}/overlay {overlay.id} r{overlay.revision}",
                        playbook=BUILD_PLAYBOOK, extravars=build_vars(overlay, spec, limit),
                        alike=BUILD_ALIKE)


def build(core: Core, actor: Actor, overlay_id: str, host: str) -> int:
    """Queue a build of the overlay on `host` (one the actor may use); returns the job id.
    When it succeeds the host has this revision; servers stacking it take it at their next
    (re)start."""
    inventory_hosts = core.inventory().hosts
    with core.db.connect() as conn:
        me = authz.current(conn, actor)
        overlay = load(conn, me, overlay_id)
        authz.require_host(conn, me, host, inventory_hosts)
        return _enqueue_build(conn, core, me, overlay, host)


def _built(conn: sqlite3.Connection, host: str, overlay_id: str) -> int | None:
    row = conn.execute("SELECT revision FROM overlay_builds WHERE overlay_id = ? AND host = ?",
                       (overlay_id, host)).fetchone()
    return None if row is None else int(row["revision"])


def built_revisions(conn: sqlite3.Connection, host: str, overlay_ids: list[str]
                    ) -> dict[str, int]:
    """{id: revision on host} for those of the ids the UI built there (users' overlays)."""
    found = {}
    for overlay_id in overlay_ids:
        revision = _built(conn, host, overlay_id)
        if revision is not None:
            found[overlay_id] = revision
    return found


def revisions(conn: sqlite3.Connection, overlay_ids: list[str]) -> dict[str, int]:
    """{id: latest revision} for those of the ids that are users' overlays."""
    found = {}
    for overlay_id in overlay_ids:
        row = conn.execute("SELECT revision FROM overlays WHERE id = ?",
                           (overlay_id,)).fetchone()
        if row is not None:
            found[overlay_id] = int(row["revision"])
    return found


def ensure_built(conn: sqlite3.Connection, core: Core, me: Actor, host: str,
                 overlay_ids: list[str], *, force: bool = False) -> list[int]:
    """Before a server job on `host`: queue a build of each users' overlay among the ids
    that the host has at an older revision (or not at all; every one with `force`), unless
    a build of that revision is queued or running there already. Jobs on one host run in
    order, so the builds run before the server job queued next. Returns the job ids."""
    queued = []
    for overlay_id in overlay_ids:
        row = conn.execute(f"{_SELECT} WHERE overlays.id = ?", (overlay_id,)).fetchone()
        if row is None:
            continue  # the inventory's (site.yml builds those)
        overlay = _from_row(conn, row, me)
        built = _built(conn, host, overlay_id)
        if not force and built is not None and built >= overlay.revision:
            continue
        pending = conn.execute(
            "SELECT extravars, created_at FROM jobs WHERE kind = ? AND host = ? AND state IN"
            " (?, ?)", (KIND_BUILD, host, jobs.QUEUED, jobs.RUNNING)).fetchall()
        if any(_builds_this(overlay, json.loads(p["extravars"]), p["created_at"])
               and json.loads(p["extravars"]).get("left4me_overlay_revision") == overlay.revision
               for p in pending):
            continue
        queued.append(_enqueue_build(conn, core, me, overlay, host))
    return queued


def builds(core: Core, actor: Actor, overlay_id: str) -> list[Build]:
    """Where the overlay was built and at which revision (out of date: not `current`)."""
    with core.db.connect() as conn:
        overlay = load(conn, authz.current(conn, actor), overlay_id)
        rows = conn.execute("SELECT host, revision, built_at FROM overlay_builds WHERE"
                            " overlay_id = ? ORDER BY host", (overlay_id,)).fetchall()
        return [Build(r["host"], r["revision"], r["built_at"], r["revision"] >= overlay.revision)
                for r in rows]


def _builds_this(overlay: Overlay, extravars: dict, queued_at: float) -> bool:
    return of_this_incarnation(overlay.id, overlay.incarnation, overlay.created_at, extravars,
                               queued_at)


def _hosts_with(conn: sqlite3.Connection, overlay: Overlay) -> list[str]:
    """Hosts the overlay was built on, or may be by a build queued or running now."""
    hosts = {r["host"] for r in conn.execute("SELECT host FROM overlay_builds WHERE"
                                             " overlay_id = ?", (overlay.id,))}
    for row in conn.execute("SELECT host, extravars, created_at FROM jobs WHERE kind = ? AND"
                            " state IN (?, ?)", (KIND_BUILD, jobs.QUEUED, jobs.RUNNING)):
        if _builds_this(overlay, json.loads(row["extravars"]), row["created_at"]):
            hosts.add(row["host"])
    return sorted(hosts)


def _stacked_by(job: jobs.Job) -> set[str]:
    """The overlays a queued job would stack: a server job's, or any of a reconcile's."""
    settings = job.extravars.get("left4me_server_settings") or {}
    stacked = set(settings.get("overlays") or [])
    for server in job.extravars.get("left4me_servers") or []:
        stacked.update(server.get("overlays") or [])
    return stacked


def _fail_jobs_waiting_on(conn: sqlite3.Connection, core: Core, build: jobs.Job,
                          state: str) -> None:
    """A build that did not succeed ends the jobs queued behind it on that host that stack
    the overlay: they would start a server on old files or none, so they do not run."""
    overlay_id = build.extravars.get("left4me_overlay_id")
    rows = conn.execute("SELECT * FROM jobs WHERE host = ? AND state = ? AND id > ? ORDER BY id",
                        (build.host, jobs.QUEUED, build.id)).fetchall()
    for row in rows:
        waiting = jobs._job(row)
        if overlay_id not in _stacked_by(waiting):
            continue
        jobs._finish(conn, core, waiting, jobs.FAILED, None,
                     f"not run: overlay {overlay_id!r} did not build on {build.host} (job"
                     f" {build.id} {state}); fix the overlay, then run this again")


def build_finished(conn: sqlite3.Connection, core: Core, job: jobs.Job, state: str) -> None:
    """A successful build records the revision it put on the host; any other outcome ends
    the server jobs waiting on it."""
    if state != jobs.SUCCEEDED:
        _fail_jobs_waiting_on(conn, core, job, state)
        return
    overlay_id = job.extravars.get("left4me_overlay_id")
    row = conn.execute("SELECT incarnation, created_at FROM overlays WHERE id = ?",
                       (overlay_id,)).fetchone()
    if row is None or not of_this_incarnation(overlay_id, row["incarnation"], row["created_at"],
                                              job.extravars, job.created_at):
        return  # deleted meanwhile (its remove job follows on this host), or another's
    conn.execute(
        "INSERT INTO overlay_builds (overlay_id, host, revision, built_at, job_id)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (overlay_id, host) DO UPDATE SET"
        " revision = excluded.revision, built_at = excluded.built_at, job_id = excluded.job_id",
        (overlay_id, job.host, job.extravars["left4me_overlay_revision"], core.clock(), job.id))
