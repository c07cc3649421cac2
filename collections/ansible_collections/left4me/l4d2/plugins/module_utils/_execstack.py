# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared objects that request an executable stack: find them, clear the request, record it.

glibc 2.41 (Debian 13) no longer makes the stack executable when ``dlopen`` loads a library
whose ``PT_GNU_STACK`` program header carries ``PF_X``; loading fails with "cannot enable
executable stack as shared object requires: Invalid argument". Left 4 Dead 2 builds have
shipped such libraries (ValveSoftware/Source-1-Games#6978, #8116) that do not need the
stack to be executable: Valve's own fix was clearing the flag (``execstack -c``). This
module does the same, and only that: it flips ``PF_X`` off in the ``PT_GNU_STACK`` header
of shared objects under the game install and records what it changed, so a later run sees
them as done and re-applies the change when steamcmd restores Valve's bytes.

Standard library only: it runs on target hosts.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
import tempfile
from dataclasses import dataclass

from ansible_collections.left4me.l4d2.plugins.module_utils._common import write_atomic

PT_GNU_STACK = 0x6474E551
PF_X = 0x1
ET_DYN = 3
_ELF_MAGIC = b"\x7fELF"
# (program header size, offset of p_flags in it) per ELF class.
_PHDR_LAYOUT = {1: (32, 24), 2: (56, 4)}
RECORD_VERSION = 1


class ExecstackError(Exception):
    """A library we must change cannot be changed; the message says what to do."""


@dataclass(frozen=True)
class StackRequest:
    """What a shared object asks of the stack.

    ``flags_offset`` is the file offset of the ``p_flags`` word of its ``PT_GNU_STACK``
    header; None when it has no such header (glibc then assumes an executable stack).
    """

    executable: bool
    flags_offset: int | None
    flags: int | None
    byte_order: str


def read_stack_request(path: str) -> StackRequest | None:
    """The stack request of a shared object; None for anything that is not one (skip it)."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(64)
            if len(header) < 52 or header[:4] != _ELF_MAGIC:
                return None
            elf_class, data = header[4], header[5]
            if elf_class not in _PHDR_LAYOUT or data not in (1, 2):
                return None
            order = "<" if data == 1 else ">"
            if struct.unpack_from(order + "H", header, 16)[0] != ET_DYN:
                return None
            if elf_class == 1:
                phoff = struct.unpack_from(order + "I", header, 28)[0]
                phentsize, phnum = struct.unpack_from(order + "HH", header, 42)
            else:
                if len(header) < 64:
                    return None
                phoff = struct.unpack_from(order + "Q", header, 32)[0]
                phentsize, phnum = struct.unpack_from(order + "HH", header, 54)
            size, flags_at = _PHDR_LAYOUT[elf_class]
            if phentsize != size or phnum == 0 or phnum == 0xFFFF:
                return None  # malformed, or PN_XNUM (never seen in a library): leave alone
            handle.seek(phoff)
            table = handle.read(size * phnum)
    except OSError:
        return None
    if len(table) != size * phnum:
        return None
    for index in range(phnum):
        entry = index * size
        if struct.unpack_from(order + "I", table, entry)[0] == PT_GNU_STACK:
            flags = struct.unpack_from(order + "I", table, entry + flags_at)[0]
            return StackRequest(bool(flags & PF_X), phoff + entry + flags_at, flags, order)
    return StackRequest(True, None, None, order)


def is_shared_object_name(name: str) -> bool:
    """``x.so`` and versioned ``x.so.6``: the names the dynamic loader opens."""
    return name.endswith(".so") or ".so." in name


def find_requesting(root: str) -> list[str]:
    """Paths (relative to root, sorted) of shared objects under root requesting an exec stack.

    Symlinks are not followed: only files that live inside the install are considered.
    """
    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs.sort()
        for name in files:
            if not is_shared_object_name(name):
                continue
            path = os.path.join(directory, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            request = read_stack_request(path)
            if request is not None and request.executable:
                found.append(os.path.relpath(path, root))
    return sorted(found)


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def clear_execstack(path: str) -> str:
    """Clear PF_X in the file's PT_GNU_STACK header atomically; returns the new sha256.

    A copy in the same directory is patched, given the original's mode, owner and
    times, flushed, then renamed over the original: a server starting meanwhile reads
    either the old or the new file, never a half-written one.
    """
    request = read_stack_request(path)
    if request is None or not request.executable:
        return sha256_of(path)
    if request.flags_offset is None:
        raise ExecstackError(
            f"{path} has no PT_GNU_STACK header, so glibc assumes it needs an executable stack"
            " and there is no flag to clear in place. Start the server with"
            " GLIBC_TUNABLES=glibc.rtld.execstack=2 or ask Valve for a fixed build")
    info = os.stat(path)
    directory, name = os.path.split(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".left4me-tmp", dir=directory)
    try:
        with os.fdopen(handle, "r+b") as out, open(path, "rb") as source:
            for block in iter(lambda: source.read(1 << 20), b""):
                out.write(block)
            out.seek(request.flags_offset)
            out.write(struct.pack(request.byte_order + "I", request.flags & ~PF_X))
            out.flush()
            os.fsync(out.fileno())
        os.chown(temporary, info.st_uid, info.st_gid)
        os.chmod(temporary, stat.S_IMODE(info.st_mode))
        os.utime(temporary, ns=(info.st_atime_ns, info.st_mtime_ns))
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return sha256_of(path)


# --- the record of what was cleared -------------------------------------------------


def read_record(path: str) -> dict[str, str]:
    """Install-relative path -> sha256 after clearing; empty when missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        return {}
    return {str(k): str(v.get("sha256")) for k, v in files.items() if isinstance(v, dict)}


def record_text(cleared: dict[str, str]) -> str:
    """The record's bytes: sorted and stable, so an unchanged record is never rewritten."""
    files = {relative: {"sha256": digest} for relative, digest in sorted(cleared.items())}
    note = ("Shared objects of the game install whose PT_GNU_STACK PF_X flag left4me cleared"
            " (glibc 2.41 refuses to dlopen libraries requesting an executable stack);"
            " sha256 is of the file after clearing.")
    return json.dumps({"version": RECORD_VERSION, "note": note, "files": files},
                      indent=2, sort_keys=True) + "\n"


def write_record(path: str, cleared: dict[str, str]) -> bool:
    """Write the record atomically (mode 0644) when its text differs; True if written.

    With nothing cleared and no record yet nothing is written: a host whose libraries never
    asked for an executable stack gets no file (and check mode predicts that exactly).
    """
    if not cleared and not os.path.exists(path):
        return False
    text = record_text(cleared)
    try:
        with open(path, encoding="utf-8") as handle:
            if handle.read() == text:
                return False
    except OSError:
        pass
    # Paths and hashes only, nothing secret; readable so the UI and operators can see it.
    write_atomic(path, text, 0o644)
    return True


@dataclass(frozen=True)
class Plan:
    to_clear: list[str]  # request an executable stack now: clear them
    restored: list[str]  # were cleared before and steamcmd put Valve's bytes back
    record: dict[str, str]  # the record after the plan, without the new hashes yet

    @property
    def changes(self) -> bool:
        return bool(self.to_clear)


def plan(root: str, recorded: dict[str, str]) -> Plan:
    """Decide: which files to clear and which recorded entries still hold.

    A recorded file that no longer requests an executable stack stays recorded only while
    it is our patched copy (same sha256); one that Valve fixed or removed drops out.
    """
    requesting = find_requesting(root)
    keep = {}
    for relative, digest in recorded.items():
        path = os.path.join(root, relative)
        if relative in requesting or not os.path.isfile(path):
            continue
        if sha256_of(path) == digest:
            keep[relative] = digest
    restored = sorted(r for r in requesting if r in recorded)
    return Plan(to_clear=requesting, restored=restored, record=keep)


def apply(root: str, decided: Plan) -> dict[str, str]:
    """Clear every planned file; returns the full record (kept + new hashes)."""
    record = dict(decided.record)
    for relative in decided.to_clear:
        record[relative] = clear_execstack(os.path.join(root, relative))
    return record
