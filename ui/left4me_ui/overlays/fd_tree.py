"""An overlay's file tree on disk, walked one directory file descriptor at a time.

A files overlay's tree is `Settings.overlays_dir / id` (directories 0700, files 0600: the
UI's state is private). Every path a person gives stays inside it: absolute paths, `.`,
`..`, empty components, NUL, line breaks and backslashes are refused, and the tree is
walked one directory file descriptor at a time with O_NOFOLLOW, so a symbolic link
(none is ever created here) is refused, never followed. Files are written to a temp file
and renamed into place, so a write never goes through an existing name.

This module knows no rows and no actors: `kinds/files.py` and `archive.py` open an
overlay's tree (authorised) and hand its descriptor to these functions.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ansible_collections.left4me.l4d2.plugins.module_utils._files_overlay import (
    FilesOverlayError,
    validate_dest,
)

from left4me_ui.refusal import Refusal

CHUNK = 1024 * 1024
TMP_PREFIX = ".left4me-tmp-"
# A path is at most this many folders and names deep and this many bytes long: deeper
# trees cost a file descriptor per level to walk and no game needs them.
MAX_PATH_PARTS = 32
MAX_PATH_BYTES = 1024
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class OverlayError(Refusal):
    """Bad input or a refused change; nothing was changed and the message is safe to show."""


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
    if parts[-1].startswith(TMP_PREFIX):
        raise OverlayError(f"{label}: names starting {TMP_PREFIX!r} are left4me's own")
    try:
        validate_dest(path)  # the host's own rule too (e.g. its manifest's name)
    except FilesOverlayError as exc:
        raise OverlayError(f"{label}: {exc}") from None
    return parts


def _short(path: str) -> str:
    """A path for a message: a very long one by its start and end."""
    return path if len(path) <= 120 else f"{path[:60]}...{path[-40:]}"


def lstat(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def open_dir(dir_fd: int, name: str, shown: str) -> int:
    info = lstat(dir_fd, name)
    if info is None:
        raise OverlayError(f"{shown} does not exist")
    require_dir(info, shown)
    try:
        return os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:  # replaced between the lstat and the open: still never followed
        raise OverlayError(f"{shown} cannot be opened as a folder ({exc.strerror})") from None


def require_dir(info: os.stat_result, shown: str) -> None:
    if stat.S_ISLNK(info.st_mode):
        raise OverlayError(f"{shown} is a symbolic link; left4me never follows one (delete it)")
    if not stat.S_ISDIR(info.st_mode):
        raise OverlayError(f"{shown} is a file, not a folder")


def missing_dirs(root_fd: int, parts: tuple[str, ...]) -> int:
    """How many folders on the way to parts[-1] do not exist yet (refusing links and files)."""
    fd = os.dup(root_fd)
    try:
        for depth, name in enumerate(parts[:-1]):
            shown = "/".join(parts[:depth + 1])
            info = lstat(fd, name)
            if info is None:
                return len(parts) - 1 - depth
            require_dir(info, shown)
            next_fd = open_dir(fd, name, shown)
            os.close(fd)
            fd = next_fd
        return 0
    finally:
        os.close(fd)


def existing(dir_fd: int, name: str, shown: str) -> os.stat_result:
    """What `name` in the folder is (never followed); refused when there is nothing."""
    info = lstat(dir_fd, name)
    if info is None:
        raise OverlayError(f"{shown} does not exist")
    return info


def stat_at(root_fd: int, parts: tuple[str, ...]) -> os.stat_result | None:
    """What the path is (never followed), or None; the folders on its way exist."""
    parent = open_parent(root_fd, parts)
    try:
        return lstat(parent, parts[-1])
    finally:
        os.close(parent)


def open_file(root_fd: int, path: str):
    """A file of the tree (a path scan found), opened for reading without following links."""
    parts = tuple(path.split("/"))
    parent = open_parent(root_fd, parts)
    try:
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    finally:
        os.close(parent)
    return os.fdopen(fd, "rb")


def open_parent(root_fd: int, parts: tuple[str, ...], create: bool = False) -> int:
    """An fd of parts[-1]'s folder, walked without following links; the caller closes it."""
    fd = os.dup(root_fd)
    try:
        for depth, name in enumerate(parts[:-1]):
            shown = "/".join(parts[:depth + 1])
            if create and lstat(fd, name) is None:
                os.mkdir(name, 0o700, dir_fd=fd)
            next_fd = open_dir(fd, name, shown)
            os.close(fd)
            fd = next_fd
        return fd
    except BaseException:
        os.close(fd)
        raise


@contextlib.contextmanager
def opened_dir(path: Path) -> Iterator[int]:
    fd = os.open(path, DIR_FLAGS)
    try:
        yield fd
    finally:
        os.close(fd)


def _children(dir_fd: int) -> list[tuple[str, os.stat_result]]:
    """A folder's entries (never followed) by name, without left4me's temp files (a write
    in flight or one a crash left: never shown or counted)."""
    with os.scandir(dir_fd) as found:
        children = [(e.name, e.stat(follow_symlinks=False)) for e in found
                    if not e.name.startswith(TMP_PREFIX)]
    return sorted(children, key=lambda child: child[0])


def scan(dir_fd: int) -> Iterator[Entry]:
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
                sub = os.open(name, DIR_FLAGS, dir_fd=fd)
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


def remove_tree(parent_fd: int, name: str) -> None:
    """Remove a folder and everything in it, never following a link, with two descriptors
    and no recursion however deep it is: each subfolder's content moves up one level (one
    rename carries a whole subtree), then the emptied subfolder goes."""
    top = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
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
                sub = os.open(child, DIR_FLAGS, dir_fd=top)
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


def usage_of(entries: list[Entry]) -> Usage:
    return Usage(sum(e.size for e in entries), len(entries))


def refuse_links(entries: list[Entry], doing: str) -> None:
    links = [e.path for e in entries if e.is_symlink]
    if links:
        raise OverlayError(f"cannot {doing}: {', '.join(links)} is a symbolic link or special"
                           " file left4me did not make; delete it first")
    deep = [e.path for e in entries if e.too_deep]
    if deep:
        raise OverlayError(f"cannot {doing}: {', '.join(deep)} holds folders more than"
                           f" {MAX_PATH_PARTS} levels deep; delete it first")


def write_file(parent_fd: int, name: str, data: bytes | Iterator[bytes], cap: int,
               too_big: str) -> int:
    """Write data to a new temp file and rename it onto name; more than cap bytes: refused."""
    tmp = f"{TMP_PREFIX}{secrets.token_hex(8)}"
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

