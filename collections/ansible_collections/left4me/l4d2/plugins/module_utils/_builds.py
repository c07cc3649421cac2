# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Game builds side by side (module srcds_install, ``side_by_side``).

Below ``state_dir``:

* ``builds/N/``: one game build each (N = 1, 2, ...; owned by the runtime user, who runs
  steamcmd), with its execstack record ``builds/N.execstack.json`` beside it;
* ``builds/current``: a link (root's) naming the current build, replaced by a rename;
* ``installation``: a link (root's) to ``builds/current``, the name every instance's env
  file gives its last layer; a host from before builds has a plain directory there.

An update never writes the current build: it copies it (``cp -a --reflink=auto``: shared
blocks where the filesystem has reflinks, a full copy elsewhere; never hard links, since
a chmod or an in-place write by steamcmd would reach the running build through them) into
the next N, runs steamcmd there, checks it complete, and only then renames a new
``current`` link into place. A mount resolves ``installation`` once, at mount time
(``_layout.game_layer_source``), and the kernel shows the resolved ``builds/N`` among its
lowerdirs in ``/proc/1/mountinfo``: a build no mount names, and not current, is removed.
A mount that names ``installation`` itself was made over the plain directory before
builds existed. Switching and removing hold the builds lock (``_mount.builds_lock``)
exclusively; a mount holds it shared while it resolves and mounts.

Pure decisions (read_layout's result in, names out) are separate from the few functions
that act, so the decisions are unit-tested without a host. Standard library only.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import stat
from dataclasses import dataclass, field

from ansible_collections.left4me.l4d2.plugins.module_utils import _common, _layout, _mount

BUILD_NAME_RE = re.compile(r"[1-9][0-9]{0,8}")
UPDATE_LOCK = ".update.lock"
NEW_LINK_PREFIX = ".new-"  # a link made beside its final name, then renamed over it
REMOVING_PREFIX = ".removing-"  # a build renamed away, then deleted (swept if a run died)
RECORD_SUFFIX = ".execstack.json"
# The part of a build steamcmd rewrites on every run (manifests, its download staging):
# left out when deciding whether an update changed the game's files.
STEAM_BOOKKEEPING = "steamapps"
FICLONE = 0x40049409  # ioctl: share a file's blocks (btrfs, xfs, bcachefs)


class BuildsError(_common.Left4meError):
    """A builds layout or request we refuse; the message says what to do."""


class BuildsBusy(BuildsError):
    """Another srcds_install holds the update lock."""


@dataclass(frozen=True)
class Builds:
    """Where one host keeps its builds (paths only)."""

    state_dir: str

    @property
    def installation(self) -> str:
        return os.path.join(self.state_dir, _layout.INSTALLATION_DIR)

    @property
    def builds_dir(self) -> str:
        return os.path.join(self.state_dir, _layout.BUILDS_DIR)

    @property
    def current_link(self) -> str:
        return os.path.join(self.builds_dir, _layout.CURRENT_BUILD)

    def build_dir(self, name: str) -> str:
        return os.path.join(self.builds_dir, name)

    def record(self, name: str) -> str:
        return self.build_dir(name) + RECORD_SUFFIX

    @property
    def installation_target(self) -> str:
        """What ``installation`` links to (relative, so the state dir may move)."""
        return os.path.join(_layout.BUILDS_DIR, _layout.CURRENT_BUILD)


@dataclass
class Layout:
    """What read_layout found."""

    names: list[str] = field(default_factory=list)  # build dirs, oldest first
    current: str | None = None  # the build builds/current names
    flat: bool = False  # installation is a plain directory (a host from before builds)
    installation_linked: bool = False  # installation is the link to builds/current
    leftovers: list[str] = field(default_factory=list)  # .removing-*, .new-* of a run that died


def read_layout(builds: Builds) -> Layout:
    found = Layout()
    try:
        entries = sorted(os.listdir(builds.builds_dir))
    except FileNotFoundError:
        entries = []
    for entry in entries:
        path = builds.build_dir(entry)
        if entry.startswith((REMOVING_PREFIX, NEW_LINK_PREFIX)):
            found.leftovers.append(entry)
        elif BUILD_NAME_RE.fullmatch(entry) and stat.S_ISDIR(os.lstat(path).st_mode):
            found.names.append(entry)
    found.names.sort(key=int)
    if os.path.islink(builds.current_link):
        target = os.readlink(builds.current_link)
        if target not in found.names:
            raise BuildsError(
                f"{builds.current_link} points at {target!r}, not at a build in"
                f" {builds.builds_dir}; point it at the newest complete build"
                f" (ln -sfn N {builds.current_link}) or remove it")
        found.current = target
    elif os.path.lexists(builds.current_link):
        raise BuildsError(f"{builds.current_link} is not a link; move it aside")
    try:
        st = os.lstat(builds.installation)
    except FileNotFoundError:
        return found
    found.flat = stat.S_ISDIR(st.st_mode)
    found.installation_linked = (stat.S_ISLNK(st.st_mode) and os.readlink(
        builds.installation) == builds.installation_target)
    if not found.flat and not stat.S_ISLNK(st.st_mode):
        raise BuildsError(f"{builds.installation} is neither the game's directory nor a link"
                          " to builds/current; move it aside")
    return found


def builds_in_use(mountinfo_text: str, builds: Builds) -> tuple[set[str], bool]:
    """(names of builds some overlay mount has among its lowerdirs, whether one has the
    plain ``installation`` directory)."""
    names: set[str] = set()
    flat_used = False
    for entry in _mount.parse_mountinfo(mountinfo_text):
        if entry.fstype != "overlay":
            continue
        for layer in _mount.mount_state_from_options(entry.super_options).lowerdirs:
            layer = os.path.normpath(layer)
            if layer == builds.installation:
                flat_used = True
            elif os.path.dirname(layer) == builds.builds_dir and BUILD_NAME_RE.fullmatch(
                    os.path.basename(layer)):
                names.add(os.path.basename(layer))
    return names, flat_used


def next_build_name(names: list[str]) -> str:
    return str(max((int(name) for name in names), default=0) + 1)


def migrates_flat(layout: Layout, flat_used: bool) -> bool:
    """A plain installation becomes the first build by a rename, only while no mount uses
    it (a running server's mount shows the path it was given) and before any build."""
    return layout.flat and layout.current is None and not flat_used


def removals(layout: Layout, used: set[str]) -> list[str]:
    """Builds neither current nor named by a mount, oldest first."""
    return [name for name in layout.names if name != layout.current and name not in used]


def removes_flat(layout: Layout, flat_used: bool) -> bool:
    """A plain installation is an old build once builds/current exists: gone when unused."""
    return layout.flat and layout.current is not None and not flat_used


def links_installation(layout: Layout) -> bool:
    """Whether ``installation`` is (re)made the link to builds/current (a plain directory
    there is replaced by retire_flat, once unused)."""
    return layout.current is not None and not layout.installation_linked and not layout.flat


def disk_refusal(free: int, copy_bytes: int, headroom: int, builds_dir: str,
                 reflink: bool) -> str | None:
    """Why an update cannot start for want of disk, else None."""
    needed = copy_bytes + headroom
    if free >= needed:
        return None
    how = ("the copy shares blocks (reflinks)" if reflink else
           f"the copy of the current build takes {_common.format_size(copy_bytes)}"
           " (this filesystem has no reflinks)" if copy_bytes else "no build to copy")
    return (f"not enough disk for an update in {builds_dir}: it needs"
            f" {_common.format_size(needed)} ({how}, plus update_headroom"
            f" {_common.format_size(headroom)} for what steamcmd downloads) and"
            f" {_common.format_size(free)} is free. Free disk there (or lower update_headroom"
            " if you know the update is small); nothing was changed")


# --- reading the trees -------------------------------------------------------------


def _first_file(root: str) -> str | None:
    for top, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(top, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode) and st.st_size:
                return path
    return None


def reflinks_work(source: str, target_dir: str) -> bool:
    """Whether a file of ``source`` can share its blocks with a new file in ``target_dir``
    (what ``cp --reflink=auto`` then does for every file), tried on one file."""
    sample = _first_file(source)
    if sample is None:
        return False
    probe = os.path.join(target_dir, f"{NEW_LINK_PREFIX}reflink-probe")
    src = os.open(sample, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        dst = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
                      | os.O_CLOEXEC, 0o600)
        try:
            fcntl.ioctl(dst, FICLONE, src)
            return True
        except OSError:
            return False
        finally:
            os.close(dst)
            os.unlink(probe)
    finally:
        os.close(src)


def tree_signature(root: str) -> dict[str, tuple]:
    """Each entry's type, mode, owner, size, mtime and link target, by relative path, but
    steamcmd's own bookkeeping (``steamapps/``). Never follows a link."""
    found: dict[str, tuple] = {}
    for top, dirs, files in os.walk(root):
        relative_top = os.path.relpath(top, root)
        if relative_top == ".":
            dirs[:] = [d for d in dirs if d != STEAM_BOOKKEEPING]
        for name in dirs + files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            target = os.readlink(path) if stat.S_ISLNK(st.st_mode) else None
            found[os.path.normpath(os.path.join(relative_top, name))] = (
                st.st_mode, st.st_uid, st.st_gid, st.st_size if not stat.S_ISDIR(
                    st.st_mode) else 0, st.st_mtime_ns if not stat.S_ISDIR(st.st_mode) else 0,
                target)
    return found


# --- acting ----------------------------------------------------------------------


@contextlib.contextmanager
def update_lock(builds: Builds):
    """flock(LOCK_EX|LOCK_NB) on builds/.update.lock for a whole srcds_install call: a
    second one is refused at once, saying so."""
    path = os.path.join(builds.builds_dir, UPDATE_LOCK)
    busy = BuildsBusy(
        f"another srcds_install is installing or updating the game in {builds.builds_dir}"
        f" right now (it holds {path}); nothing was changed. Run again once it has finished")
    with _common.exclusive_lock(path, busy=busy):
        yield


def update_running(builds: Builds) -> bool:
    """Whether another call holds the update lock now (read-only: makes no lock file)."""
    try:
        fd = os.open(os.path.join(builds.builds_dir, UPDATE_LOCK),
                     os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def ensure_builds_dir(builds: Builds) -> None:
    with contextlib.suppress(FileExistsError):
        os.mkdir(builds.builds_dir, 0o755)
    st = os.lstat(builds.builds_dir)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0:
        raise BuildsError(f"{builds.builds_dir} must be a directory owned by root (it holds"
                          " the link every server's mount resolves); fix or move it aside")


def _replace_link(path: str, target: str) -> None:
    """``path`` becomes a link to ``target`` by one rename (never a moment without it)."""
    new = os.path.join(os.path.dirname(path), NEW_LINK_PREFIX + os.path.basename(path))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(new)
    os.symlink(target, new)
    os.rename(new, path)
    fd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_current(builds: Builds, name: str) -> None:
    _replace_link(builds.current_link, name)


def link_installation(builds: Builds) -> None:
    _replace_link(builds.installation, builds.installation_target)


def migrate_flat(builds: Builds, name: str) -> None:
    """The plain installation becomes builds/NAME (a rename: nothing copied) and current."""
    os.rename(builds.installation, builds.build_dir(name))
    with contextlib.suppress(FileNotFoundError):
        os.rename(builds.installation + RECORD_SUFFIX, builds.record(name))
    make_current(builds, name)
    link_installation(builds)


def _retire(path: str) -> str:
    """Rename ``path`` to .removing-NAME beside it (under the lock, instant); the deletion
    follows outside the lock (delete_retired). A run that dies between leaves a
    .removing-* the next sweep deletes."""
    doomed = os.path.join(os.path.dirname(path), REMOVING_PREFIX + os.path.basename(path))
    os.rename(path, doomed)
    return doomed


def retire_build(builds: Builds, name: str) -> str:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(builds.record(name))
    return _retire(builds.build_dir(name))


def retire_flat(builds: Builds) -> str:
    """The unused plain installation goes, and installation becomes the link at once."""
    doomed = builds.build_dir(REMOVING_PREFIX + _layout.INSTALLATION_DIR)
    os.rename(builds.installation, doomed)
    link_installation(builds)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(builds.installation + RECORD_SUFFIX)
    return doomed


def retire_leftovers(builds: Builds, leftovers: list[str]) -> list[str]:
    """Links a run left (.new-*) go now; directories (.removing-*) are returned to delete."""
    doomed = []
    for entry in leftovers:
        path = builds.build_dir(entry)
        if os.path.isdir(path) and not os.path.islink(path):
            doomed.append(path)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    return doomed


def delete_retired(paths: list[str]) -> None:
    """rmtree never follows a link (it works on directory fds)."""
    for path in paths:
        shutil.rmtree(path)


def free_bytes(path: str) -> int:
    vfs = os.statvfs(path)
    return vfs.f_bavail * vfs.f_frsize
