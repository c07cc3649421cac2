"""A files overlay as a zip: export it, import one, or upload files together (packed as one).

A zip import is extracted into a staging directory (checking declared sizes, then counting
the bytes actually written, since headers can lie), and only a complete, within-limits tree
is swapped in with one atomic rename exchange; a refused archive leaves the tree as it was.
"""

from __future__ import annotations

import ctypes
import errno
import io
import os
import shutil
import stat
import tempfile
import time
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from left4me_ui.authz import Actor
from left4me_ui.core import Core
from left4me_ui.overlays.fd_tree import (
    CHUNK,
    DIR_FLAGS,
    TMP_PREFIX,
    OverlayError,
    check_path,
    lstat,
    open_file,
    open_parent,
    opened_dir,
    refuse_links,
    scan,
    size_text,
    usage_of,
    write_file,
)
from left4me_ui.overlays.kinds.files import changing, reading
from left4me_ui.overlays.rows import tree_dir
from left4me_ui.settings import Settings

# A zip entry that declares more than this many times its compressed size is refused as a
# bomb (real game files compress a few-fold; deflate's own ceiling is about 1032:1). Small
# entries are exempt: their size limits bound them anyway.
MAX_COMPRESSION_RATIO = 200
RATIO_EXEMPT_BYTES = 1024 * 1024


def export_zip(core: Core, actor: Actor, overlay_id: str) -> bytes:
    """The whole tree as a zip (folders included, so empty ones survive a round trip)."""
    buffer = io.BytesIO()
    with reading(core, actor, overlay_id) as root_fd:
        entries = list(scan(root_fd))
        refuse_links(entries, "export the overlay")
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
                with open_file(root_fd, entry.path) as source, \
                        archive.open(info, "w") as target:
                    shutil.copyfileobj(source, target, CHUNK)
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
        if child.name.startswith(TMP_PREFIX):
            continue
        info = child.stat(follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode):
            os.mkdir(child.name, 0o700, dir_fd=dst_fd)
            sub_src = os.open(child.name, DIR_FLAGS, dir_fd=src_fd)
            sub_dst = os.open(child.name, DIR_FLAGS, dir_fd=dst_fd)
            try:
                _link_copy(sub_src, sub_dst)
            finally:
                os.close(sub_src)
                os.close(sub_dst)
        else:  # regular: refuse_links ran first
            os.link(child.name, child.name, src_dir_fd=src_fd, dst_dir_fd=dst_fd,
                    follow_symlinks=False)


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK):
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
    with changing(core, actor, overlay_id, action, detail) as (_me, _o, root_fd):
        current = list(scan(root_fd))
        if not replace:
            refuse_links(current, "import into the overlay")
        base = 0 if replace else usage_of(current).total_bytes
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
                _exchange(tree_dir(core, overlay_id), staging)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return written


def _extract(archive: zipfile.ZipFile, planned: list[_ZipEntry], staging: Path, root_fd: int,
             replace: bool, base: int, core: Core, words: _Source) -> int:
    """Extract the planned entries into staging (over a link copy of the tree unless
    replacing); returns the number of files written."""
    limits = core.settings
    written_files, total = 0, base
    with opened_dir(staging) as stage_fd:
        if not replace:
            _link_copy(root_fd, stage_fd)
        for entry in planned:
            shown = f"{words.entry} {entry.info.orig_filename!r}"
            try:
                parent = open_parent(stage_fd, entry.parts, create=True)
            except OverlayError as exc:
                raise OverlayError(f"{shown}: {exc}") from None
            try:
                if entry.is_dir:
                    _extract_folder(parent, entry, shown)
                else:
                    total = _extract_file(archive, parent, entry, shown, total, limits)
                    written_files += 1
            finally:
                os.close(parent)
        final = usage_of(list(scan(stage_fd)))
    if final.entries > limits.overlay_max_entries:
        raise OverlayError(f"the overlay would hold {final.entries} files and folders; the most"
                           f" it may hold is {limits.overlay_max_entries}")
    if final.total_bytes > limits.overlay_max_total_bytes:
        raise OverlayError(f"the overlay would hold {size_text(final.total_bytes)}; the most it may"
                           f" hold is {size_text(limits.overlay_max_total_bytes)}")
    return written_files


def _extract_folder(parent: int, entry: _ZipEntry, shown: str) -> None:
    info = lstat(parent, entry.parts[-1])
    if info is None:
        os.mkdir(entry.parts[-1], 0o700, dir_fd=parent)
    elif not stat.S_ISDIR(info.st_mode):
        raise OverlayError(f"{shown} is a folder but the overlay has a file there")


def _extract_file(archive: zipfile.ZipFile, parent: int, entry: _ZipEntry, shown: str,
                  total: int, limits: Settings) -> int:
    """Write one file of the zip in the staging tree; returns the tree's bytes after it."""
    info = lstat(parent, entry.parts[-1])
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise OverlayError(f"{shown} is a file but the overlay has a folder there")
    total -= info.st_size if info is not None else 0
    # Never more than the entry declared, the file limit or what the overlay has left:
    # counted as written, since a header can lie.
    room = limits.overlay_max_total_bytes - total
    cap = min(entry.info.file_size, limits.overlay_max_file_bytes, room)
    if cap == room and room < entry.info.file_size:
        most = size_text(limits.overlay_max_total_bytes)
        too_big = f"{shown} would make the overlay more than {most}, the most it may hold"
    else:
        too_big = f"{shown} holds more than its header declares; refused as a zip bomb"
    try:
        with archive.open(entry.info) as stream:
            return total + write_file(parent, entry.parts[-1], _chunks(stream), cap, too_big)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise OverlayError(f"{shown} is damaged or lies about its size ({exc}); nothing was"
                           " changed") from None
