# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# Shipped to hosts verbatim: standard library only (tests/collection/test_host_libraries.py).
"""Instance mounts: validation, mount state and the mount itself.

Each left4me instance is a kernel overlayfs mount (here: the instance's *mount*) at
``{state_dir}/runtime/{name}/merged`` whose lower layers are the instance's
overlays (the layer directories under ``overlays/``, first wins) followed by the
shared game installation, with its own ``upper`` and ``work`` directories.

Where ``upper`` and ``work`` live (the instance's *writes*):

* capped (every instance made since the cap is a filesystem): on an ext4 filesystem in
  the sparse image ``runtime/{name}/writes.img`` (root 0600, as large as the cap,
  ``LEFT4ME_UPPER_DIR_MAX``), loop-mounted at ``runtime/{name}/writes`` before the
  overlay and unmounted after it (the loop device goes with it, autoclear). A write past
  the cap fails there and then with ENOSPC; the host's disk never holds more than the
  image. A changed cap is applied at the next mount: grown with ``resize2fs``, shrunk
  only while what the server wrote still fits.
* counted (an instance whose ``runtime/{name}/upper`` is a plain directory, made before):
  kept as it is, nothing moved or copied; its cap is counted at every mount and by
  ``left4me-mount check`` (the upper-check timer).

This file is standard library only. The collection's ``instance_mount`` module
imports it, and the host role copies it verbatim to
``/usr/local/libexec/left4me/left4me_mount.py`` (with ``_common.py`` and ``_layout.py``
as ``left4me_common.py`` and ``left4me_layout.py`` beside it) for the privileged
``left4me-mount`` helper that the game unit runs in ``ExecStartPre=+`` and
``ExecStopPost=+``.

Instance env file (``{config_dir}/instances/{name}.env``): one ``KEY=value``
per line, shell style. Blank lines and lines starting with ``#`` are ignored,
an ``export`` prefix is accepted, values may be single- or double-quoted; the
last assignment of a key wins. The mount reads ``LEFT4ME_LOWERDIRS``: the
complete colon-separated lower layer list, first wins, normally ending with
the shared installation, e.g.
``LEFT4ME_LOWERDIRS=/var/lib/left4me/overlays/7:/var/lib/left4me/installation``.

Mounting and unmounting happen in the mount namespace of PID 1 (the host's),
because a caller inside a sandboxed unit would otherwise mount into a private
namespace that the game unit never sees. ``setns(CLONE_NEWNS)`` only works in
a single-threaded process: call these functions from a plain script or module,
never from a process that has started threads.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import re
import stat
import struct
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

try:
    from ansible_collections.left4me.l4d2.plugins.module_utils import _common, _layout
except ImportError:  # the host's copies, beside left4me_mount.py (role game_host)
    import left4me_common as _common  # type: ignore[no-redef]
    import left4me_layout as _layout  # type: ignore[no-redef]

LOWERDIRS_KEY = "LEFT4ME_LOWERDIRS"
# The most an instance's upper dir may hold (bytes, in its env file; srcds_instance's
# upper_dir_max): a server whose upper dir holds more is not mounted, so it does not start.
UPPER_DIR_MAX_KEY = "LEFT4ME_UPPER_DIR_MAX"
DEFAULT_UPPER_DIR_MAX = "2G"  # an env file from before the cap existed gets this one

# The kernel's OVL_MAX_STACK: more lower layers fail with "too many lower directories".
MAX_LAYERS = 500
# fsconfig(2) copies a string value with strndup_user(value, 256), so a path
# passed as one FSCONFIG_SET_STRING value has at most 255 bytes.
MAX_FSCONFIG_STRING = 255
# ':' separates layers in lowerdir=, ',' separates mount options, '\\' escapes
# both, and a newline would corrupt the env file and mountinfo.
FORBIDDEN_PATH_CHARS = (":", ",", "\\", "\n")
FUSE_OVERLAYFS_XATTR_PREFIX = "user.fuseoverlayfs."

_OCTAL_ESCAPE_RE = re.compile(r"\\([0-7]{3})")

# Syscall numbers as on x86_64; syscalls added since 5.1 share one number on
# every architecture but alpha.
SYS_MOVE_MOUNT = 429
SYS_FSOPEN = 430
SYS_FSCONFIG = 431
SYS_FSMOUNT = 432
FSOPEN_CLOEXEC = 0x1
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6
FSMOUNT_CLOEXEC = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOVE_MOUNT_F_EMPTY_PATH = 0x4
AT_FDCWD = -100
MS_NOSUID = 0x2
MS_NODEV = 0x4
CLONE_NEWNS = 0x00020000


class MountError(_common.Left4meError):
    """A mount request or a host state we refuse; the message tells a person what to do."""


# --- the writes filesystem (capped instances) ------------------------------

# mkfs.ext4 for a new server's writes, chosen to cost the host almost nothing until the
# server writes: no reserved blocks (the server's own filesystem, root never needs room on
# it), the smallest journal (4 MiB, 1024 blocks), 4 KiB blocks and one inode per 16 KiB
# whatever the cap (mke2fs's "small" type would pick 1 KiB blocks and four times the
# inodes below 512 MiB, which a later grow keeps), and assume_storage_prezeroed (e2fsprogs
# 1.47: a new sparse file reads as zeros, so neither mkfs nor the kernel's lazy init writes
# the inode tables or the journal). A 2 GiB image takes about 1.2 MiB of disk (du), about
# 2 MiB once its server has run.
MKFS_EXT4 = ("/usr/sbin/mkfs.ext4", "-q", "-F", "-t", "ext4", "-T", "default", "-b", "4096",
             "-m", "0", "-J", "size=4", "-E", "assume_storage_prezeroed=1")
E2FSCK = ("/usr/sbin/e2fsck", "-f", "-p")
RESIZE2FS = "/usr/sbin/resize2fs"
MOUNT_CMD = "/usr/bin/mount"
# nosuid, nodev: nothing the server writes can be a setuid binary or a device node that
# counts (the overlay on top has them too); loop: mount(8) attaches the image to a free
# loop device with autoclear, so the unmount releases it; discard: what the server deletes
# is punched out of the sparse image, so the host gets that disk back at once.
WRITES_MOUNT_OPTIONS = "loop,nosuid,nodev,noatime,discard"
WRITES_FSTYPE = "ext4"
FS_BLOCK = 4096  # the image's size is kept a whole number of ext4 blocks
# Below this, mkfs.ext4 cannot fit its journal and metadata (srcds_instance's minimum for
# upper_dir_max is above it).
MIN_WRITES_SIZE = 16 << 20
_EXT4_MAGIC = 0xEF53


def writes_size(cap: int) -> int:
    """The image size for a cap in bytes: the cap, rounded down to whole 4 KiB blocks."""
    return max(cap // FS_BLOCK * FS_BLOCK, MIN_WRITES_SIZE)


def ext4_usage(superblock: bytes, source: str = "image") -> tuple[int, int]:
    """(size, used) in bytes from an ext4 superblock (the 1024 bytes at offset 1024).

    Used is what the filesystem holds, metadata included: blocks minus free blocks, as the
    superblock says after a clean unmount (``statvfs`` says it while mounted).
    """
    if len(superblock) < 0x15C or struct.unpack_from("<H", superblock, 0x38)[0] != _EXT4_MAGIC:
        raise MountError(f"{source} holds no ext4 filesystem; move it aside (the server's"
                         " next start makes a new, empty one)")
    blocks_lo, _reserved_lo, free_lo = struct.unpack_from("<III", superblock, 0x4)
    log_block_size = struct.unpack_from("<I", superblock, 0x18)[0]
    incompat = struct.unpack_from("<I", superblock, 0x60)[0]
    blocks_hi = free_hi = 0
    if incompat & 0x80:  # INCOMPAT_64BIT: the high halves count
        blocks_hi, _reserved_hi, free_hi = struct.unpack_from("<III", superblock, 0x150)
    block_size = 1024 << log_block_size
    blocks = blocks_lo | blocks_hi << 32
    free = free_lo | free_hi << 32
    return blocks * block_size, (blocks - free) * block_size


def read_image_usage(image: str) -> tuple[int, int]:
    """(size, used) of the ext4 filesystem in a root-owned image file (never a link)."""
    fd = os.open(image, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise MountError(f"{image} is not a regular file; move it aside")
        superblock = os.pread(fd, 1024, 1024)
    finally:
        os.close(fd)
    return ext4_usage(superblock, image)


def statvfs_usage(mount_point: str) -> tuple[int, int]:
    """(size, used) of a mounted filesystem."""
    vfs = os.statvfs(mount_point)
    return vfs.f_blocks * vfs.f_frsize, (vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize


def shrink_refusal(used: int, cap: int, where: str) -> str | None:
    """Why a cap below what the server's writes already take cannot apply, else None."""
    if used <= writes_size(cap):
        return None
    used_text, cap_text = _common.format_size(used), _common.format_size(cap)
    return (f"the server's writes ({where}) take {used_text}, more than the new"
            f" upper_dir_max {cap_text}: a cap is never shrunk below what is used."
            f" Keep upper_dir_max at {used_text} or more, or delete files the server"
            " wrote first")


# --- lowerdir validation ---------------------------------------------------


def _check_path_text(path: object, what: str) -> str:
    if not isinstance(path, str) or not path:
        raise MountError(f"{what} must be a non-empty path string, got {path!r}")
    bad = [c for c in FORBIDDEN_PATH_CHARS if c in path]
    if bad:
        raise MountError(
            f"{what} {path!r} contains {', '.join(repr(c) for c in bad)};"
            " overlayfs option strings cannot carry ':', ',', '\\' or newlines"
        )
    if not os.path.isabs(path):
        raise MountError(f"{what} {path!r} is not an absolute path")
    if ".." in path.split("/"):
        raise MountError(f"{what} {path!r} contains a '..' component; give the real path")
    return path


def _is_within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def check_lowerdir_paths(lowerdirs: Sequence[str]) -> None:
    """The half of :func:`validate_lowerdirs` that reads no filesystem: 1 to MAX_LAYERS
    absolute paths an overlayfs option string can carry, none listed twice as written."""
    if isinstance(lowerdirs, str) or not isinstance(lowerdirs, Sequence):
        raise MountError("lowerdirs must be a list of paths")
    if not lowerdirs:
        raise MountError("no lower layers given: an instance needs at least one lowerdir")
    if len(lowerdirs) > MAX_LAYERS:
        raise MountError(
            f"{len(lowerdirs)} lower layers given; the kernel allows at most {MAX_LAYERS}"
            " lowerdirs per overlay mount"
        )
    for index, given in enumerate(lowerdirs, start=1):
        _check_path_text(given, f"lowerdir #{index}")
    _check_listed_once(lowerdirs, [os.path.normpath(given) for given in lowerdirs])


def _check_listed_once(lowerdirs: Sequence[str], paths: Sequence[str]) -> None:
    seen: dict[str, int] = {}
    for index, path in enumerate(paths, start=1):
        if path in seen:
            raise MountError(
                f"lowerdir #{index} {lowerdirs[index - 1]} duplicates lowerdir #{seen[path]}"
                f" ({path}); list each layer once"
            )
        seen[path] = index


def validate_lowerdirs(lowerdirs: Sequence[str], allowed_roots: Sequence[str]) -> list[str]:
    """Check the lower layers and return them resolved (realpath), in order.

    Each layer must be an absolute path to an existing directory that lies,
    after resolving symlinks, under one of ``allowed_roots``; at most
    MAX_LAYERS layers, no duplicates.
    """
    check_lowerdir_paths(lowerdirs)
    roots = [os.path.realpath(_check_path_text(r, "allowed root")) for r in allowed_roots]
    if not roots:
        raise MountError("allowed_roots is empty: no lowerdir can be accepted")
    resolved: list[str] = []
    for index, given in enumerate(lowerdirs, start=1):
        what = f"lowerdir #{index}"
        real = os.path.realpath(given)
        if not any(_is_within(real, root) for root in roots):
            shown = given if real == os.path.normpath(given) else f"{given} (-> {real})"
            raise MountError(f"{what} {shown} is outside the allowed roots {', '.join(roots)}")
        if not os.path.isdir(real):
            raise MountError(f"{what} {given} does not exist or is not a directory")
        _check_path_text(real, what)
        if len(real.encode()) > MAX_FSCONFIG_STRING:
            raise MountError(
                f"{what} {real} is {len(real.encode())} bytes long;"
                f" the kernel takes at most {MAX_FSCONFIG_STRING} per layer"
            )
        resolved.append(real)
    _check_listed_once(lowerdirs, resolved)
    return resolved


# --- env file --------------------------------------------------------------


def parse_env(text: str, source: str = "env file") -> dict[str, str]:
    """Parse shell-style ``KEY=value`` lines (:func:`_layout.parse_env`); MountError."""
    return _layout.parse_env(text, source, MountError)


def read_env_file(path: str) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise MountError(
            f"instance env file {path} does not exist; create it with {LOWERDIRS_KEY}=..."
        ) from None
    except OSError as exc:
        raise MountError(f"cannot read instance env file {path}: {exc.strerror}") from None
    return parse_env(text, path)


def lowerdirs_from_env(env: dict[str, str], source: str = "env file") -> list[str]:
    value = env.get(LOWERDIRS_KEY, "")
    if not value:
        raise MountError(f"{source} does not set {LOWERDIRS_KEY} (colon-separated lowerdirs)")
    layers = value.split(":")
    if "" in layers:
        raise MountError(f"{source}: {LOWERDIRS_KEY} has an empty entry ('::' or a stray ':')")
    return layers


def upper_dir_max_from_env(env: dict[str, str], source: str = "env file") -> int:
    """The upper dir's cap in bytes (the default when the env file predates the key)."""
    return _common.parse_size(env.get(UPPER_DIR_MAX_KEY) or DEFAULT_UPPER_DIR_MAX,
                              f"{source}: {UPPER_DIR_MAX_KEY}", MountError)


# --- the upper dir's size ---------------------------------------------------


def check_upper_dir_size(upper: str, cap: int) -> None:
    """Refuse an upper dir that holds more than ``cap`` bytes (counted with lstat only,
    never through a link the server made; the walk stops once past the cap)."""
    used = _common.tree_usage(upper, stop_above=cap)
    if used > cap:
        raise MountError(
            f"upper dir {upper} holds more than {_common.format_size(cap)} (at least"
            f" {_common.format_size(used)}), the cap for this server (upper_dir_max): it is full of"
            " what the server wrote (logs, downloads, changed files). Delete files in it, or"
            " raise upper_dir_max, then start the server again"
        )


def uppers_over_cap(config_dir: str = _common.DEFAULT_CONFIG_DIR,
                    state_dir: str = _common.DEFAULT_STATE_DIR,
                    ns_pid: int = 1) -> list[tuple[str, str]]:
    """(name, why) of every mounted counted instance whose upper dir holds more than its cap.

    For the periodic check (``left4me-mount check``): a running server that writes past
    its cap is stopped, and its next start is refused until its upper dir is smaller.
    Instances whose env file cannot be read are skipped (their start says why).
    """
    found = []
    instances_dir = os.path.join(config_dir, _layout.INSTANCES_DIR)
    try:
        entries = sorted(os.listdir(instances_dir))
    except FileNotFoundError:
        return found
    for entry in entries:
        name = entry[: -len(".env")] if entry.endswith(".env") else ""
        try:
            _layout.validate_instance_name(name, MountError)
            env_path = os.path.join(instances_dir, entry)
            cap = upper_dir_max_from_env(read_env_file(env_path), env_path)
        except MountError:
            continue
        paths = _layout.instance_paths(name, state_dir, MountError)
        if paths.capped or not read_mount_state(paths.merged, ns_pid).mounted:
            continue  # a capped server's filesystem refuses the write itself
        try:
            check_upper_dir_size(paths.upper, cap)
        except MountError as exc:
            found.append((name, str(exc)))
    return found


# --- fuse-overlayfs leftovers ----------------------------------------------


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _fuse_xattrs(target: int | str) -> list[str]:
    """fuse-overlayfs xattr names of a directory fd, or of a path's last component (never
    followed)."""
    try:
        if isinstance(target, int):
            names = os.listxattr(target)
        else:
            names = os.listxattr(target, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.ENOENT):
            return []
        raise
    return [n for n in names if n.startswith(FUSE_OVERLAYFS_XATTR_PREFIX)]


def _subdirs_and_others(dir_fd: int) -> tuple[list[str], list[str]]:
    with os.scandir(dir_fd) as entries:
        found = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
    return ([name for name, is_dir in found if is_dir],
            [name for name, is_dir in found if not is_dir])


def find_fuse_taint(upper: str) -> tuple[str, str] | None:
    """Return (path, xattr) of the first entry carrying a fuse-overlayfs xattr.

    The upper dir is written by the game (a tenant's code): each directory is opened from
    its parent's fd without following a link, and an entry's xattrs are read through
    ``/proc/self/fd/N/NAME`` without following NAME, so a link swapped in never makes
    root look outside the tree. At most one fd per level is open.
    """
    try:
        top = os.open(upper, _DIR_FLAGS)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise MountError(f"upper dir {upper} cannot be opened as a directory ({exc.strerror});"
                         " it must be a real directory, not a link") from None
    stack: list[tuple[int, str, list[str]]] = []
    try:
        pending = [(top, upper)]
        while pending or stack:
            if pending:
                dir_fd, shown = pending.pop()
                stack.append((dir_fd, shown, []))
                found = _fuse_xattrs(dir_fd)
                if found:
                    return shown, found[0]
                subdirs, others = _subdirs_and_others(dir_fd)
                for name in others:
                    found = _fuse_xattrs(f"/proc/self/fd/{dir_fd}/{name}")
                    if found:
                        return os.path.join(shown, name), found[0]
                stack[-1][2].extend(reversed(subdirs))
            dir_fd, shown, subdirs = stack[-1]
            if not subdirs:
                os.close(stack.pop()[0])
                continue
            name = subdirs.pop()
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno == errno.EMFILE:
                    raise MountError(f"upper dir {upper} is nested too deeply to check; move it"
                                     f" aside (mv {upper} {upper}.deep-old)") from None
                continue  # gone, or a link now: nothing below it is the upper dir's
            pending.append((child, os.path.join(shown, name)))
    finally:
        for dir_fd, _shown, _subdirs in stack:
            os.close(dir_fd)
        for dir_fd, _shown in pending:
            os.close(dir_fd)
    return None


def check_upper_not_fuse_tainted(upper: str) -> None:
    taint = find_fuse_taint(upper)
    if taint:
        path, xattr = taint
        raise MountError(
            f"upper dir {upper} was written by fuse-overlayfs ({path} has xattr {xattr});"
            " kernel overlayfs would resurrect files deleted there. Stop the instance and move"
            f" the upper dir aside (mv {upper} {upper}.fuse-old), then mount again"
        )


# --- mount state -----------------------------------------------------------


def _unescape(text: str) -> str:
    return _OCTAL_ESCAPE_RE.sub(lambda m: chr(int(m.group(1), 8)), text)


@dataclass(frozen=True)
class MountInfoEntry:
    mount_id: int
    parent_id: int
    mount_point: str
    mount_options: tuple[str, ...]
    fstype: str
    source: str
    super_options: tuple[str, ...]


def parse_mountinfo(text: str) -> list[MountInfoEntry]:
    """Parse /proc/PID/mountinfo (see proc_pid_mountinfo(5))."""
    entries: list[MountInfoEntry] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        left, sep, right = line.partition(" - ")
        fields = left.split(" ")
        tail = right.split(" ")
        if not sep or len(fields) < 6 or len(tail) < 3:
            raise MountError(f"unexpected mountinfo line: {line!r}")
        entries.append(
            MountInfoEntry(
                mount_id=int(fields[0]),
                parent_id=int(fields[1]),
                mount_point=_unescape(fields[4]),
                mount_options=tuple(fields[5].split(",")),
                fstype=tail[0],
                source=_unescape(tail[1]),
                super_options=tuple(_unescape(o) for o in " ".join(tail[2:]).split(",")),
            )
        )
    return entries


@dataclass(frozen=True)
class MountState:
    mounted: bool
    fstype: str | None = None
    lowerdirs: list[str] = field(default_factory=list)
    upperdir: str | None = None
    workdir: str | None = None


def mount_state_from_options(options: Sequence[str]) -> MountState:
    """Lower/upper/work dirs from overlay super options.

    A legacy mount shows one ``lowerdir=a:b:c``; a mount built with
    ``lowerdir+`` (kernel >= 6.8) shows one ``lowerdir+=path`` per layer.
    """
    lowerdirs: list[str] = []
    upper = work = None
    for option in options:
        key, _sep, value = option.partition("=")
        if key == "lowerdir":
            lowerdirs.extend(value.split(":"))
        elif key == "lowerdir+":
            lowerdirs.append(value)
        elif key == "upperdir":
            upper = value
        elif key == "workdir":
            work = value
    return MountState(True, "overlay", lowerdirs, upper, work)


def mount_state(merged: str, mountinfo_text: str) -> MountState:
    """State of the topmost mount on ``merged``."""
    top = None
    for entry in parse_mountinfo(mountinfo_text):
        if entry.mount_point == merged:
            top = entry
    if top is None:
        return MountState(False)
    if top.fstype != "overlay":
        return MountState(True, top.fstype)
    return mount_state_from_options(top.super_options)


def mountinfo_path(ns_pid: int = 1) -> str:
    return f"/proc/{ns_pid}/mountinfo"


def read_mount_state(merged: str, ns_pid: int = 1) -> MountState:
    with open(mountinfo_path(ns_pid), encoding="utf-8", errors="surrogateescape") as handle:
        return mount_state(merged, handle.read())


# --- mount namespace -------------------------------------------------------

_libc_handle: ctypes.CDLL | None = None


def _libc() -> ctypes.CDLL:
    global _libc_handle
    if _libc_handle is None:
        _libc_handle = ctypes.CDLL(None, use_errno=True)
        _libc_handle.syscall.restype = ctypes.c_long
    return _libc_handle


def _oserror(step: str, path: str | None = None, detail: str = "") -> OSError:
    err = ctypes.get_errno()
    message = f"{step}: {os.strerror(err)}"
    if detail:
        message += f" ({detail})"
    return OSError(err, message, path)


def _root_mount_id(mountinfo: str) -> int | None:
    for entry in parse_mountinfo(mountinfo):
        if entry.mount_point == "/":
            return entry.mount_id
    return None


def in_mount_namespace_of(pid: int = 1) -> bool:
    """True when this process already shares ``pid``'s mount namespace."""
    try:
        target = os.stat(f"/proc/{pid}/ns/mnt")
        own = os.stat("/proc/self/ns/mnt")
        return (target.st_dev, target.st_ino) == (own.st_dev, own.st_ino)
    except PermissionError:
        # Some sandboxes (e.g. a firecracker init as PID 1) refuse access to
        # PID 1's namespace links even for root. Mount ids are unique across
        # namespaces, so equal ids of the root mount mean the same namespace.
        with open(f"/proc/{pid}/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
            theirs = _root_mount_id(fh.read())
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
            ours = _root_mount_id(fh.read())
        return theirs is not None and theirs == ours


def enter_mount_namespace(pid: int = 1) -> bool:
    """Join ``pid``'s mount namespace unless already in it; True if it switched.

    The process must be single-threaded (setns(2) refuses CLONE_NEWNS
    otherwise). Afterwards the cwd and root are the namespace's root.
    """
    if in_mount_namespace_of(pid):
        return False
    ns_path = f"/proc/{pid}/ns/mnt"
    try:
        fd = os.open(ns_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise OSError(
            exc.errno, f"open {ns_path} to enter PID {pid}'s mount namespace: {exc.strerror}"
        ) from None
    try:
        if _libc().setns(fd, CLONE_NEWNS) != 0:
            raise _oserror(
                f"setns into PID {pid}'s mount namespace",
                ns_path,
                "the process must be single-threaded and have CAP_SYS_ADMIN",
            )
    finally:
        os.close(fd)
    os.chdir("/")
    return True


# --- mount and unmount ------------------------------------------------------


def _fs_context_log(fs_fd: int) -> str:
    """Messages the kernel queued on an fs context ("e overlayfs: ...")."""
    lines = []
    while True:
        try:
            message = os.read(fs_fd, 4096)
        except OSError:
            break
        if not message:
            break
        lines.append(message.decode(errors="replace").strip())
    return "; ".join(lines)


class _LowerdirPlusUnsupported(Exception):
    pass


def _mount_new_api(
    lowerdirs: Sequence[str], upper: str, work: str, merged: str, source: str
) -> None:
    libc = _libc()
    fs_fd = libc.syscall(SYS_FSOPEN, ctypes.c_char_p(b"overlay"), ctypes.c_uint(FSOPEN_CLOEXEC))
    if fs_fd < 0:
        if ctypes.get_errno() == errno.ENOSYS:
            raise _LowerdirPlusUnsupported()
        raise _oserror('fsopen("overlay")', merged, "is the overlay module available?")
    try:

        def config(key: str, value: str | None, cmd: int = FSCONFIG_SET_STRING) -> None:
            ret = libc.syscall(
                SYS_FSCONFIG,
                ctypes.c_int(fs_fd),
                ctypes.c_uint(cmd),
                ctypes.c_char_p(key.encode() if key else None),
                ctypes.c_char_p(value.encode() if value is not None else None),
                ctypes.c_int(0),
            )
            if ret < 0:
                err = ctypes.get_errno()
                step = f"fsconfig {key}={value}" if key else "fsconfig FSCONFIG_CMD_CREATE"
                raise OSError(err, f"{step}: {os.strerror(err)} ({_fs_context_log(fs_fd)})", merged)

        for index, layer in enumerate(lowerdirs):
            try:
                config("lowerdir+", layer)
            except OSError as exc:
                if index == 0 and exc.errno == errno.EINVAL:
                    raise _LowerdirPlusUnsupported() from None
                raise
        config("source", source)
        config("upperdir", upper)
        config("workdir", work)
        config("", None, FSCONFIG_CMD_CREATE)
        mnt_fd = libc.syscall(
            SYS_FSMOUNT,
            ctypes.c_int(fs_fd),
            ctypes.c_uint(FSMOUNT_CLOEXEC),
            ctypes.c_uint(MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV),
        )
        if mnt_fd < 0:
            raise _oserror("fsmount overlay", merged, _fs_context_log(fs_fd))
    finally:
        os.close(fs_fd)
    try:
        ret = libc.syscall(
            SYS_MOVE_MOUNT,
            ctypes.c_int(mnt_fd),
            ctypes.c_char_p(b""),
            ctypes.c_int(AT_FDCWD),
            ctypes.c_char_p(merged.encode()),
            ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH),
        )
        if ret < 0:
            raise _oserror(f"move_mount onto {merged}", merged)
    finally:
        os.close(mnt_fd)


def legacy_mount_data(lowerdirs: Sequence[str], upper: str, work: str) -> str:
    return f"lowerdir={':'.join(lowerdirs)},upperdir={upper},workdir={work}"


def _mount_legacy(
    lowerdirs: Sequence[str], upper: str, work: str, merged: str, source: str
) -> None:
    data = legacy_mount_data(lowerdirs, upper, work)
    limit = os.sysconf("SC_PAGE_SIZE") - 1
    if len(data.encode()) > limit:
        raise MountError(
            f"this kernel lacks lowerdir+ (needs >= 6.8) and the joined overlay options are"
            f" {len(data.encode())} bytes, over the {limit}-byte limit of mount(2);"
            " use fewer or shorter lowerdirs"
        )
    ret = _libc().mount(
        ctypes.c_char_p(source.encode()),
        ctypes.c_char_p(merged.encode()),
        ctypes.c_char_p(b"overlay"),
        ctypes.c_ulong(MS_NOSUID | MS_NODEV),
        ctypes.c_char_p(data.encode()),
    )
    if ret != 0:
        raise _oserror(f"mount(2) overlay on {merged}", merged, "see dmesg for overlayfs details")


def mount_overlayfs(
    lowerdirs: Sequence[str],
    upper: str,
    work: str,
    merged: str,
    *,
    source: str = "overlay",
    legacy: bool = False,
) -> str:
    """Mount an overlay in the current mount namespace; return the method used.

    Uses fsopen/fsconfig(lowerdir+)/fsmount/move_mount, so neither the number
    of layers nor their joined length hits a string limit. Falls back to
    mount(2) when the kernel has no lowerdir+ (or ``legacy`` is set).
    """
    if not legacy:
        try:
            _mount_new_api(lowerdirs, upper, work, merged, source)
            return "lowerdir+"
        except _LowerdirPlusUnsupported:
            pass
    _mount_legacy(lowerdirs, upper, work, merged, source)
    return "mount(2)"


def mount_source(name: str) -> str:
    """The mount's source field, so findmnt shows which instance it is."""
    return f"left4me-{name}"


def _links_under(pid: str, path: str) -> list[str]:
    prefix = path.rstrip("/") + "/"
    hits = []
    base = f"/proc/{pid}"
    candidates = ["cwd", "root"]
    with contextlib.suppress(OSError):
        candidates += [f"fd/{fd}" for fd in os.listdir(f"{base}/fd")]
    for name in candidates:
        try:
            target = os.readlink(f"{base}/{name}")
        except OSError:
            continue
        if target == path or target.startswith(prefix):
            hits.append(name)
    return hits


def find_holders(path: str, mountinfo_text: str = "") -> list[str]:
    """Describe what keeps ``path`` busy: processes inside it, mounts below it."""
    holders = []
    for pid in sorted((p for p in os.listdir("/proc") if p.isdigit()), key=int):
        hits = _links_under(pid, path)
        if hits:
            try:
                with open(f"/proc/{pid}/comm", encoding="utf-8") as fh:
                    comm = fh.read().strip()
            except OSError:
                comm = "?"
            holders.append(f"pid {pid} ({comm}: {', '.join(hits)})")
    prefix = path.rstrip("/") + "/"
    if mountinfo_text:
        for entry in parse_mountinfo(mountinfo_text):
            if entry.mount_point.startswith(prefix):
                holders.append(f"mount {entry.mount_point}")
    return holders


def unmount_overlayfs(merged: str) -> bool:
    """umount2(merged) in the current namespace; False if it was not mounted."""
    if _libc().umount2(ctypes.c_char_p(merged.encode()), ctypes.c_int(0)) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOENT):
        return False
    if err == errno.EBUSY:
        try:
            with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
                holders = find_holders(merged, fh.read())
        except OSError:
            holders = []
        held = "; ".join(holders) if holders else "no process found in this namespace"
        raise OSError(
            err,
            f"umount {merged}: target busy, held by: {held}. Stop those (the game server of"
            " this instance?) and unmount again",
            merged,
        )
    raise _oserror(f"umount {merged}", merged)


# --- directories -----------------------------------------------------------


@dataclass(frozen=True)
class DirSpec:
    path: str
    uid: int
    gid: int
    mode: int
    # Only create when missing; its owner and mode belong to the host role.
    create_only: bool = False


def resolve_owner(owner: str) -> tuple[int, int]:
    return _common.owner_ids(
        owner, None, MountError,
        "runtime user {name!r} does not exist; create it first or set owner",
    )


def instance_dir_specs(paths: _layout.InstancePaths, uid: int, gid: int) -> list[DirSpec]:
    """Upper and merged belong to the runtime user (merged shows upper's root).

    The kernel uses work/ with the mounter's (root's) credentials, so it
    stays root-only. A capped instance's upper and work are made inside its writes
    filesystem once that is mounted (:func:`writes_dir_specs`); here only its mount point.
    """
    around = [
        DirSpec(os.path.dirname(paths.root), 0, 0, 0o755, create_only=True),
        DirSpec(paths.root, 0, 0, 0o755),
    ]
    if paths.capped:
        return [*around, DirSpec(paths.writes, 0, 0, 0o755),
                DirSpec(paths.merged, uid, gid, 0o755)]
    return [*around, *writes_dir_specs(paths, uid, gid), DirSpec(paths.merged, uid, gid, 0o755)]


def writes_dir_specs(paths: _layout.InstancePaths, uid: int, gid: int) -> list[DirSpec]:
    return [DirSpec(paths.upper, uid, gid, 0o755), DirSpec(paths.work, 0, 0, 0o700)]


def dir_changes(specs: Sequence[DirSpec], skip: Sequence[str] = ()) -> list[str]:
    """What ensure_dirs would change, one line each; ``skip`` paths are mount points."""
    changes = []
    for spec in specs:
        try:
            st = os.lstat(spec.path)
        except FileNotFoundError:
            changes.append(f"create {spec.path}")
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise MountError(f"{spec.path} exists but is not a directory; move it aside")
        if spec.path in skip or spec.create_only:
            continue
        if (st.st_uid, st.st_gid) != (spec.uid, spec.gid):
            changes.append(f"chown {spec.uid}:{spec.gid} {spec.path}")
        if stat.S_IMODE(st.st_mode) != spec.mode:
            changes.append(f"chmod {spec.mode:04o} {spec.path}")
    return changes


def ensure_dirs(specs: Sequence[DirSpec], skip: Sequence[str] = ()) -> list[str]:
    """Create/fix the directories; return the paths it created (for rollback)."""
    created = []
    for spec in specs:
        try:
            os.mkdir(spec.path, spec.mode)
            created.append(spec.path)
        except FileExistsError:
            if spec.path in skip or spec.create_only:
                continue
        os.chown(spec.path, spec.uid, spec.gid, follow_symlinks=False)
        os.chmod(spec.path, spec.mode)
    return created


def remove_created_dirs(created: Sequence[str]) -> None:
    for path in reversed(created):
        with contextlib.suppress(OSError):
            os.rmdir(path)


# --- plan and apply ----------------------------------------------------------


@dataclass
class MountPlan:
    """What to do for one instance, decided before anything changes."""

    name: str
    state: str
    paths: _layout.InstancePaths
    before: MountState
    lowerdirs: list[str] = field(default_factory=list)
    dirs: list[DirSpec] = field(default_factory=list)
    dir_changes: list[str] = field(default_factory=list)
    action: str = "none"  # none | mount | remount | unmount
    # A capped instance's writes filesystem: mounted now?, what to do with it, in order
    # (create | grow | shrink, then mount; or unmount), and the image's size after.
    writes_mounted: bool = False
    writes_steps: list[str] = field(default_factory=list)
    writes_size: int = 0
    writes_dirs: list[DirSpec] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.action != "none" or bool(self.dir_changes) or bool(self.writes_steps)

    def describe_writes(self) -> list[str]:
        """The writes steps as a person reads them (diffs, check mode)."""
        size = _common.format_size(self.writes_size)
        shown = {"create": f"create {self.paths.image} ({size}, sparse)",
                 "grow": f"grow {self.paths.image} to {size}",
                 "shrink": f"shrink {self.paths.image} to {size}",
                 "mount": f"mount {self.paths.image} on {self.paths.writes}",
                 "unmount": f"unmount {self.paths.writes}"}
        return [shown[step] for step in self.writes_steps]


def _same_mount(before: MountState, lowerdirs: Sequence[str], paths: _layout.InstancePaths) -> bool:
    return (
        before.fstype == "overlay"
        and before.lowerdirs == list(lowerdirs)
        and before.upperdir == paths.upper
        and before.workdir == paths.work
    )


def plan_mount(
    name: str,
    lowerdirs: Sequence[str],
    *,
    state_dir: str = _common.DEFAULT_STATE_DIR,
    allowed_roots: Sequence[str] | None = None,
    owner: str = _common.DEFAULT_RUNTIME_USER,
    remount: bool = False,
    ns_pid: int = 1,
    upper_dir_max: int | None = None,
) -> MountPlan:
    """Validate everything and decide; changes nothing on the host.

    With ``upper_dir_max`` (bytes), a mount over an upper dir holding more is refused.
    """
    paths = _layout.instance_paths(name, state_dir, MountError)
    roots = _layout.allowed_roots(state_dir) if allowed_roots is None else list(allowed_roots)
    if isinstance(lowerdirs, (list, tuple)):
        lowerdirs = [_layout.game_layer_source(layer, state_dir) for layer in lowerdirs]
    resolved = validate_lowerdirs(lowerdirs, roots)
    uid, gid = resolve_owner(owner)
    if not os.path.isdir(state_dir):
        raise MountError(f"state dir {state_dir} does not exist; the host role creates it")
    before = read_mount_state(paths.merged, ns_pid)
    plan = MountPlan(name, "mounted", paths, before, resolved, instance_dir_specs(paths, uid, gid))
    skip = [paths.merged] if before.mounted else []
    plan.dir_changes = dir_changes(plan.dirs, skip)
    if before.mounted and before.fstype != "overlay":
        raise MountError(
            f"{paths.merged} has a {before.fstype} mount on it, not an overlay; unmount it first"
        )
    if not before.mounted:
        plan.action = "mount"
    elif not _same_mount(before, resolved, paths):
        if not remount:
            raise MountError(
                f"{paths.merged} is mounted with different layers"
                f" ({':'.join(before.lowerdirs)}); stop the instance first or pass remount"
            )
        plan.action = "remount"
    if paths.capped:
        plan.writes_dirs = writes_dir_specs(paths, uid, gid)
        plan_writes(plan, upper_dir_max, remount, ns_pid)
        if plan.writes_mounted:
            plan.dir_changes += dir_changes(plan.writes_dirs)
    elif upper_dir_max is not None:
        # Also over a mount still in place (a start that finds it mounted goes ahead).
        check_upper_dir_size(paths.upper, upper_dir_max)
    if plan.action != "none":
        check_upper_not_fuse_tainted(paths.upper)
        if (
            os.path.isdir(paths.upper)
            and os.path.isdir(paths.work)
            and os.stat(paths.upper).st_dev != os.stat(paths.work).st_dev
        ):
            raise MountError(
                f"{paths.work} and {paths.upper} are on different filesystems;"
                " overlayfs needs them on the same one"
            )
    return plan


BUILDS_LOCK = ".lock"  # in builds/, root's


@contextlib.contextmanager
def builds_lock(state_dir: str = _common.DEFAULT_STATE_DIR, shared: bool = True
                ) -> Iterator[None]:
    """Hold flock on ``builds/.lock`` for the block: shared while a mount resolves the game
    layer and mounts it, exclusive while srcds_install makes another build current or
    removes builds no mount uses. So no build is removed between a mount's choosing it and
    the mount. Without ``builds/`` (a host before its first build; the role makes it before
    it installs this helper) there is no build to guard and no lock."""
    builds = _layout.builds_path(state_dir, MountError)
    try:
        fd = os.open(os.path.join(builds, BUILDS_LOCK),
                     os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except FileNotFoundError:
        fd = None
    try:
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        if fd is not None:
            os.close(fd)


def plan_writes(plan: MountPlan, cap: int | None, remount: bool, ns_pid: int = 1) -> None:
    """Decide what a capped instance's writes filesystem needs before the overlay mount:
    made at its cap, resized to a changed cap (only while unmounted, so at a start), a
    shrink below what it holds refused; then mounted."""
    paths = plan.paths
    state = read_mount_state(paths.writes, ns_pid)
    if state.mounted and state.fstype != WRITES_FSTYPE:
        raise MountError(f"{paths.writes} has a {state.fstype} mount on it, not the server's"
                         f" writes filesystem; unmount it first")
    plan.writes_mounted = state.mounted
    try:
        current = os.lstat(paths.image)
    except FileNotFoundError:
        default = _common.parse_size(DEFAULT_UPPER_DIR_MAX, "default", MountError)
        plan.writes_size = writes_size(default if cap is None else cap)
        plan.writes_steps = ["create", "mount"]
        return
    if not stat.S_ISREG(current.st_mode):
        raise MountError(f"{paths.image} is not a regular file; move it aside")
    plan.writes_size = current.st_size if cap is None else writes_size(cap)
    if plan.writes_size != current.st_size:
        where = paths.writes if state.mounted else paths.image
        _size, used = statvfs_usage(paths.writes) if state.mounted else read_image_usage(
            paths.image)
        if plan.writes_size < current.st_size:
            if not state.mounted:  # resize2fs's own floor: what it holds and its metadata
                used = max(used, resize2fs_minimum(paths.image))
            refusal = shrink_refusal(used, plan.writes_size, where)
            if refusal:
                raise MountError(refusal)
        if plan.action == "none":  # the overlay stays mounted over it
            if not remount:
                raise MountError(f"upper_dir_max changed while {paths.merged} is mounted;"
                                 " stop the instance first or pass remount")
            plan.action = "remount"
        plan.writes_steps = ["grow" if plan.writes_size > current.st_size else "shrink"]
    if plan.writes_steps or not state.mounted:
        plan.writes_steps.append("mount")


def cap_refusal(paths: _layout.InstancePaths, cap: int, ns_pid: int = 1) -> str | None:
    """Why ``cap`` cannot be this capped instance's new upper_dir_max (it is below what its
    writes filesystem holds), else None; for a converge, before anything is written."""
    if not paths.capped or not os.path.lexists(paths.image):
        return None
    if writes_size(cap) >= os.lstat(paths.image).st_size:
        return None  # the same cap, or a larger one: nothing to refuse
    if read_mount_state(paths.writes, ns_pid).mounted:
        _size, used = statvfs_usage(paths.writes)
        where = paths.writes
    else:
        _size, used = read_image_usage(paths.image)
        where = paths.image
    return shrink_refusal(used, cap, where)


def plan_unmount(name: str, *, state_dir: str = _common.DEFAULT_STATE_DIR,
                 ns_pid: int = 1) -> MountPlan:
    paths = _layout.instance_paths(name, state_dir, MountError)
    before = read_mount_state(paths.merged, ns_pid)
    action = "unmount" if before.mounted else "none"
    plan = MountPlan(name, "unmounted", paths, before, action=action)
    plan.writes_mounted = paths.capped and read_mount_state(paths.writes, ns_pid).mounted
    plan.writes_steps = ["unmount"] if plan.writes_mounted else []
    return plan


def _run(command: Sequence[str], step: str) -> str:
    """Run an e2fsprogs or util-linux command (LANG=C); its stdout, or MountError saying
    what failed and what it said."""
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, check=False,
                              env={"LANG": "C", "LC_ALL": "C",
                                   "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    except FileNotFoundError:
        raise MountError(f"{step}: {command[0]} is missing; install e2fsprogs (role game_host"
                         " does)") from None
    # e2fsck -p exits 1 when it corrected something: the filesystem is fine then.
    if done.returncode != 0 and not (command[0] == E2FSCK[0] and done.returncode == 1):
        said = " ".join((done.stderr.strip() or done.stdout.strip()).split())
        raise MountError(f"{step} failed (exit {done.returncode}): {said}")
    return done.stdout


def resize2fs_minimum(image: str) -> int:
    """The least an unmounted image's filesystem can shrink to, in bytes (resize2fs -P)."""
    said = _run([RESIZE2FS, "-P", image], f"resize2fs -P {image}")
    match = re.search(r"minimum size of the filesystem: (\d+)", said)
    if not match:
        raise MountError(f"resize2fs -P {image} did not say the filesystem's minimum size:"
                         f" {' '.join(said.split())}")
    return int(match.group(1)) * FS_BLOCK


def create_image(image: str, size: int) -> None:
    """A new sparse image file, root's 0600 (never over an existing one), with an ext4
    filesystem filling it; nothing is left behind when mkfs fails."""
    fd = os.open(image, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    try:
        os.ftruncate(fd, size)
    finally:
        os.close(fd)
    try:
        _run([*MKFS_EXT4, image], f"mkfs.ext4 {image}")
    except MountError:
        os.unlink(image)
        raise


def resize_image(image: str, size: int) -> None:
    """Grow or shrink an unmounted image's filesystem and file to ``size`` bytes."""
    _run([*E2FSCK, image], f"e2fsck {image} before resizing it")
    growing = size > os.lstat(image).st_size
    if growing:
        os.truncate(image, size)
    _run([RESIZE2FS, image, f"{size // 1024}K"],
         f"resize2fs {image} to {_common.format_size(size)}")
    if not growing:
        os.truncate(image, size)


def mount_writes(image: str, writes: str) -> None:
    try:
        _run([MOUNT_CMD, "-t", WRITES_FSTYPE, "-o", WRITES_MOUNT_OPTIONS, image, writes],
             f"mount {image} on {writes}")
    except MountError as exc:
        hint = ""
        if "loop device" in str(exc):
            hint = (" (no loop device this process may use: the host needs /dev/loop-control"
                    " and free /dev/loopN, and the unit DeviceAllow=block-loop)")
        raise MountError(f"{exc}{hint}") from None


def apply_writes(plan: MountPlan) -> bool:
    """Make, resize and mount the writes filesystem as planned; True if mounted here."""
    paths = plan.paths
    steps = plan.writes_steps
    if plan.writes_mounted and ("grow" in steps or "shrink" in steps):
        unmount_overlayfs(paths.writes)
    if "create" in steps:
        create_image(paths.image, plan.writes_size)
    elif "grow" in steps or "shrink" in steps:
        resize_image(paths.image, plan.writes_size)
    if "mount" not in steps:
        return False
    mount_writes(paths.image, paths.writes)
    return True


# The config layer's directories the game may write in (srcds_instance gives them this mode;
# see _instance.GAME_WRITABLE_LAYER_DIRS). An upper dir holds a copy of one once anything was
# written below it, with the owner and mode it had then, and that copy wins over the layer:
# a copy made while they were root's 0750 is brought to the new mode at the next mount.
GAME_WRITABLE_LAYER_MODE = 0o1770
_COPIED_UP_LAYER_DIRS = (("left4dead2",), ("left4dead2", "cfg"))
_OLD_LAYER_MODE = 0o750


def open_copied_up_layer_dirs(upper: str, layer_uid: int = 0) -> list[str]:
    """chmod the upper dir's copies of the game-writable layer directories that still have
    the old root 0750 (owned by ``layer_uid``) to GAME_WRITABLE_LAYER_MODE; return them.
    Each component is opened O_NOFOLLOW from its parent's fd (the upper dir is the game's:
    a link there is never followed) and the mode set on the fd. Only while unmounted."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        root_fd = os.open(upper, flags)
    except FileNotFoundError:
        return []
    fixed = []
    try:
        for parts in _COPIED_UP_LAYER_DIRS:
            fds = []
            try:
                fd = root_fd
                for part in parts:
                    fd = os.open(part, flags, dir_fd=fd)
                    fds.append(fd)
                st = os.fstat(fd)
                if st.st_uid == layer_uid and stat.S_IMODE(st.st_mode) == _OLD_LAYER_MODE:
                    os.fchmod(fd, GAME_WRITABLE_LAYER_MODE)
                    fixed.append(os.path.join(upper, *parts))
            except OSError as exc:
                if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    raise
            finally:
                for fd in fds:
                    os.close(fd)
    finally:
        os.close(root_fd)
    return fixed


def apply_mount_plan(plan: MountPlan) -> str:
    """Carry out a plan in the current mount namespace; return what was done.

    On a failed mount it removes the directories it created, and after a
    failed remount it puts the previous layers back.
    """
    paths = plan.paths
    if plan.action in ("unmount", "remount"):
        unmount_overlayfs(paths.merged)
    if plan.state == "unmounted":
        if "unmount" in plan.writes_steps:
            unmount_overlayfs(paths.writes)  # the loop device goes with it (autoclear)
        return "unmounted" if plan.action == "unmount" or plan.writes_steps else "none"
    skip = [paths.merged] if plan.action == "none" else []
    if plan.writes_mounted:
        skip.append(paths.writes)
    created = ensure_dirs(plan.dirs, skip)
    writes_mounted_here = False

    def undo() -> None:
        if writes_mounted_here:
            with contextlib.suppress(OSError):
                unmount_overlayfs(paths.writes)
        if "create" in plan.writes_steps:  # an image made by this call, still empty
            with contextlib.suppress(OSError):
                os.unlink(paths.image)
        remove_created_dirs(created)

    try:
        writes_mounted_here = apply_writes(plan) if paths.capped else False
        ensure_dirs(plan.writes_dirs)
    except (OSError, MountError):
        undo()
        raise
    if plan.action == "none":
        return "none"
    source = mount_source(plan.name)
    open_copied_up_layer_dirs(paths.upper)
    try:
        return mount_overlayfs(plan.lowerdirs, paths.upper, paths.work, paths.merged, source=source)
    except (OSError, MountError):
        if plan.action == "remount" and plan.before.lowerdirs:
            # The writes stay mounted: the previous layers go back over the same upper dir.
            with contextlib.suppress(OSError, MountError):
                mount_overlayfs(
                    plan.before.lowerdirs, paths.upper, paths.work, paths.merged, source=source
                )
        else:
            undo()
        raise
