# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# Shipped to hosts verbatim: standard library only (tests/collection/test_host_libraries.py).
"""What every left4me module_utils shares: the id rule, default paths, owners, atomic
writes, atomic symlink swaps and locks. Each fact lives here once.

An instance name and an overlay id both become a path component and part of a unit
name, so both follow :data:`ID_PATTERN`. Copies that cannot import this file (role
argument specs, the sudoers line, READMEs, templates) are checked against it by
``tests/collection/test_one_copy.py``.

Standard library only: modules import it on the target, and the roles copy it as
``left4me_common.py`` beside the libraries they install for the root-run helpers
(``left4me_mount.py``, ``left4me_workshop.py``, ``left4me_steamcmd.py``), which import
it from there.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import grp
import os
import pwd
import re
import stat
from collections.abc import Iterator, Sequence

DEFAULT_STATE_DIR = "/var/lib/left4me"
DEFAULT_CONFIG_DIR = "/etc/left4me"
DEFAULT_RUNTIME_USER = "left4me"

# Commands whose output a module parses run in the C locale: their words, not a translation.
LANG_C = {"LANG": "C", "LC_ALL": "C"}

ID_PATTERN = r"[a-z0-9][a-z0-9_-]{0,63}"
ID_RULE = "use 1-64 characters from a-z, 0-9, '_' and '-', starting with a letter or digit"
_ID_RE = re.compile(ID_PATTERN)


class Left4meError(Exception):
    """Bad input or a host state we refuse; the message tells a person what to do."""


# --- ids ---------------------------------------------------------------------------


def validate_id(value: object, what: str, error: type[Exception] = Left4meError) -> str:
    """Return ``value`` if it follows :data:`ID_PATTERN`, else raise ``error``.

    ``what`` names the thing in the message ("instance name", "overlay id"); ``error``
    is the caller's own error class, so callers keep catching what they caught.
    """
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise error(f"invalid {what} {value!r}: {ID_RULE}")
    return value


# --- owners ------------------------------------------------------------------------


def user_account(
    name: str, error: type[Exception] = Left4meError, unknown: str = "user {name!r} does not exist"
) -> pwd.struct_passwd:
    """The passwd entry of ``name``; ``unknown`` (formatted with ``name``) is the error text."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise error(unknown.format(name=name)) from None


def group_id(name: str, error: type[Exception] = Left4meError) -> int:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise error(f"group {name!r} does not exist") from None


def owner_ids(
    owner: str,
    group: str | None = None,
    error: type[Exception] = Left4meError,
    unknown: str = "owner {name!r} does not exist",
) -> tuple[int, int]:
    """(uid, gid) of ``owner`` and ``group``, or of the owner's primary group."""
    account = user_account(owner, error, unknown)
    if group is None:
        return account.pw_uid, account.pw_gid
    return account.pw_uid, group_id(group, error)


# --- atomic writes -----------------------------------------------------------------


def write_atomic(
    path: str, content: bytes | str, mode: int, owner: tuple[int, int] | None = None
) -> None:
    """Replace ``path`` by a temp file in its directory renamed over it.

    Readers see the old file or the new one, never a part; the mode and owner are set
    before the rename, so the new file never shows with the temp file's 0600. Text is
    written as UTF-8.
    """
    import tempfile  # here: left4me-read imports this module per request and writes rarely

    data = content.encode("utf-8") if isinstance(content, str) else content
    fd, temp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if owner:
                os.fchown(handle.fileno(), *owner)
            # after the chown, which would clear setuid/setgid bits
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def replace_symlink(path: str, target: str, owner: tuple[int, int] | None = None) -> None:
    """Point ``path`` at ``target`` through a temp link renamed over it.

    A reader (srcds loading steamclient.so, an instance reading an addon) never sees
    the link missing. A temp link left by a killed run is replaced.
    """
    temp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temp)
    os.symlink(target, temp)
    if owner:
        os.lchown(temp, *owner)
    os.replace(temp, path)


# --- reads -------------------------------------------------------------------------


def read_text(path: str) -> str | None:
    """A file's text (bytes that are not UTF-8 read as U+FFFD); None when it is not there.

    Only for files in trees no tenant can write (``/etc/left4me``): it follows links and
    reads to the end. Below a tenant's tree use :func:`read_beneath`.
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except (FileNotFoundError, NotADirectoryError):
        return None


class UnsafeFileError(Left4meError):
    """A path below a directory is a link, not a regular file, or too large: not read."""


READ_BENEATH_LIMIT = 64 * 1024
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY


def _kind_of_mode(mode: int) -> str:
    for test, words in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"),
                        (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                        (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"),
                        (stat.S_ISREG, "a regular file")):
        if test(mode):
            return words
    return "not a regular file"


def _kind(dir_fd: int, name: str) -> str:
    """What ``name`` is in ``dir_fd``, in words (for a refusal)."""
    try:
        return _kind_of_mode(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError as exc:
        return f"not readable ({exc.strerror})"


def read_beneath(root_dir: str, relative_path: str,
                 limit: int = READ_BENEATH_LIMIT) -> str | None:
    """The text of ``root_dir/relative_path``, resolved without following any link.

    For a root process reading a tree a tenant controls (an instance's merged tree, an
    overlay): each directory is opened from its parent's descriptor with ``O_NOFOLLOW``,
    the file with ``O_NOFOLLOW|O_NONBLOCK`` (a FIFO does not block the open), and only a
    regular file of at most ``limit`` bytes is read. None when a component is missing;
    :class:`UnsafeFileError` for a link at any component, a FIFO, device or socket, or a
    file above ``limit``. ``root_dir`` itself must be a directory the caller trusts.
    """
    parts = relative_path.split("/")
    if os.path.isabs(relative_path) or any(p in ("", ".", "..") for p in parts):
        raise UnsafeFileError(f"{relative_path!r} is not a plain relative path")
    where = os.path.join(root_dir, relative_path)
    try:
        dir_fd = os.open(root_dir, _DIR_FLAGS)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise UnsafeFileError(f"cannot open {root_dir}: {exc.strerror}; {where} was not read") \
            from None
    try:
        for index, part in enumerate(parts[:-1]):
            try:
                next_fd = os.open(part, _DIR_FLAGS, dir_fd=dir_fd)
            except FileNotFoundError:
                return None
            except OSError:
                kind = _kind(dir_fd, part)
                if kind == "a regular file":  # where a directory was: nothing below it
                    return None
                inside = os.path.join(root_dir, *parts[: index + 1])
                raise UnsafeFileError(f"{inside} is {kind}, not a directory: {where} was not"
                                      " read (left4me never follows links below it)") from None
            os.close(dir_fd)
            dir_fd = next_fd
        try:
            file_fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            kind = _kind(dir_fd, parts[-1])
            if kind == "a regular file":
                raise UnsafeFileError(f"cannot read {where}: {exc.strerror}") from None
            raise UnsafeFileError(f"{where} is {kind}: not read (left4me reads only regular"
                                  " files there, never through a link)") from None
    finally:
        os.close(dir_fd)
    with os.fdopen(file_fd, "rb") as handle:
        info = os.fstat(file_fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFileError(f"{where} is {_kind_of_mode(info.st_mode)}: not read (left4me"
                                  " reads only regular files there)")
        data = handle.read(limit + 1)
    if info.st_size > limit or len(data) > limit:
        raise UnsafeFileError(f"{where} is larger than {limit} bytes: not read (make it"
                              " smaller)")
    return data.decode("utf-8", "replace")


# --- locks -------------------------------------------------------------------------


@contextlib.contextmanager
def exclusive_lock(
    path: str,
    mode: int = 0o600,
    owner: tuple[int, int] | None = None,
    busy: Exception | None = None,
) -> Iterator[None]:
    """Hold flock(LOCK_EX) on ``path`` (created with ``mode`` and ``owner``) for the block.

    Without ``busy`` it waits for another holder; with it, it raises ``busy`` at once
    instead. The file is opened read-only and never followed through a symlink: a lock
    needs no write access, so a lock file owned by another user still works.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        if owner:
            os.fchown(fd, *owner)
        if busy is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                raise busy from exc
        yield
    finally:
        os.close(fd)


# --- sizes -------------------------------------------------------------------------

SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE_RE = re.compile(r"([0-9]{1,15})([KMGT]?)")


def parse_size(value: object, what: str, error: type[Exception] = Left4meError) -> int:
    """Bytes from ``value``: a whole number with an optional K, M, G or T suffix (powers of
    1024, as systemd reads ``MemoryMax=``), e.g. ``2G``; an int is taken as bytes."""
    text = str(value).strip() if isinstance(value, (str, int)) else ""
    match = _SIZE_RE.fullmatch(text) if not isinstance(value, bool) else None
    if not match:
        raise error(
            f"{what} {value!r} must be a size: a whole number of bytes with an optional K, M,"
            " G or T suffix (powers of 1024), e.g. 2G"
        )
    return int(match.group(1)) * SIZE_UNITS[match.group(2)]


def format_size(size: int) -> str:
    """``size`` bytes the way people read them: 2.0 GiB, 512.0 MiB, 7 bytes."""
    for suffix, factor in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20),
                           ("KiB", 1 << 10)):
        if size >= factor:
            return f"{size / factor:.1f} {suffix}"
    return f"{size} bytes"


def _open_dir_beneath(root_fd: int, parts: Sequence[str]) -> int | None:
    """A directory below ``root_fd``, each component opened with O_NOFOLLOW (never through
    a link, even one swapped in since it was listed); None when it is gone or not a dir."""
    fd = root_fd
    try:
        for part in parts:
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                            dir_fd=fd)
            if fd != root_fd:
                os.close(fd)
            fd = child
    except OSError as exc:
        if fd != root_fd:
            os.close(fd)
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            return None
        raise
    return fd


def tree_usage(root: str, stop_above: int | None = None) -> int:
    """Bytes of disk a directory tree uses (allocated blocks, each inode once).

    Walks with lstat only: a symlink counts as itself and is never followed, each
    directory is opened beneath ``root`` one component at a time with O_NOFOLLOW (so a
    tree its owner changes during the walk cannot lead it elsewhere), and nothing is
    opened but directories. Sparse files count what they really occupy. With
    ``stop_above``, the walk ends as soon as the sum passes it (the sum returned is then
    a lower bound), so a tree of millions of files costs no more than it takes to know.
    A missing ``root`` uses nothing.
    """
    try:
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return 0
        if exc.errno in (errno.ENOTDIR, errno.ELOOP):
            return os.lstat(root).st_blocks * 512
        raise
    try:
        return _usage_below(root_fd, stop_above)
    finally:
        os.close(root_fd)


def _usage_below(root_fd: int, stop_above: int | None) -> int:
    seen: set[tuple[int, int]] = set()
    total = os.fstat(root_fd).st_blocks * 512
    pending: list[tuple[str, ...]] = [()]
    while pending:
        parts = pending.pop()
        fd = _open_dir_beneath(root_fd, parts) if parts else root_fd
        if fd is None:
            continue
        try:
            with os.scandir(fd) as entries:
                listed = [(e.name, e.stat(follow_symlinks=False)) for e in entries]
        finally:
            if fd != root_fd:
                os.close(fd)
        for name, info in listed:
            if info.st_nlink > 1 and not stat.S_ISDIR(info.st_mode):
                if (info.st_dev, info.st_ino) in seen:
                    continue
                seen.add((info.st_dev, info.st_ino))
            total += info.st_blocks * 512
            if stop_above is not None and total > stop_above:
                return total
            if stat.S_ISDIR(info.st_mode):
                pending.append((*parts, name))
    return total
