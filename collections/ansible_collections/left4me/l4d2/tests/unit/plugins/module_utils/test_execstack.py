# Copyright: (c) 2026, left4me developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Tests for module_utils/_execstack.py on ELF files crafted here, byte by byte."""

from __future__ import annotations

import json
import os
import pathlib
import struct
import sys

import pytest

try:
    from ansible_collections.left4me.l4d2.plugins.module_utils import _execstack as execstack
except ImportError:  # plain pytest from the repo root: make the collection importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[7]))
    from ansible_collections.left4me.l4d2.plugins.module_utils import _execstack as execstack

PT_LOAD, PT_GNU_STACK = 1, 0x6474E551
RW, RWX = 6, 7


def elf(*, elf64: bool = False, stack: int | None = RWX, e_type: int = 3,
        big_endian: bool = False) -> bytes:
    """An ELF header plus program headers: PT_LOAD, then PT_GNU_STACK with `stack` flags."""
    order = ">" if big_endian else "<"
    word = "Q" if elf64 else "I"
    ehsize, phentsize = (64, 56) if elf64 else (52, 32)
    segments = [(PT_LOAD, 5)] + ([(PT_GNU_STACK, stack)] if stack is not None else [])
    ident = b"\x7fELF" + bytes([2 if elf64 else 1, 2 if big_endian else 1, 1]) + b"\x00" * 9
    header = ident + struct.pack(f"{order}HHI{word}{word}{word}IHHHHHH", e_type,
                                 62 if elf64 else 3, 1, 0, ehsize, 0, 0, ehsize, phentsize,
                                 len(segments), 0, 0, 0)
    table = b""
    for kind, flags in segments:
        if elf64:
            table += struct.pack(f"{order}IIQQQQQQ", kind, flags, 0, 0, 0, 0, 0, 16)
        else:
            table += struct.pack(f"{order}IIIIIIII", kind, 0, 0, 0, 0, 0, flags, 16)
    return header + table + b"library payload\n"


def put(path: pathlib.Path, body: bytes, mode: int = 0o755) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    path.chmod(mode)
    return path


@pytest.mark.parametrize("elf64", [False, True])
@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize(("stack", "executable"), [(RWX, True), (RW, False), (None, True)])
def test_read_stack_request(tmp_path, elf64, big_endian, stack, executable):
    path = put(tmp_path / "lib.so", elf(elf64=elf64, stack=stack, big_endian=big_endian))
    request = execstack.read_stack_request(str(path))
    assert request is not None and request.executable is executable
    assert (request.flags_offset is None) is (stack is None)


@pytest.mark.parametrize(
    "body",
    [b"", b"#!/bin/sh\n", b"\x7fELF\x01\x01\x01" + b"\x00" * 9 + b"placeholder text\n",
     elf(e_type=2),  # an executable: not dlopened, its stack is the kernel's business
     elf()[:60]],  # truncated program header table
)
def test_anything_but_a_shared_object_is_skipped(tmp_path, body):
    assert execstack.read_stack_request(str(put(tmp_path / "x.so", body))) is None


@pytest.mark.parametrize("elf64", [False, True])
def test_clear_flips_only_pf_x_and_keeps_mode_owner_and_times(tmp_path, elf64):
    original = elf(elf64=elf64)
    path = put(tmp_path / "bin" / "engine_srv.so", original, 0o750)
    os.utime(path, ns=(1_000_000_000, 2_000_000_000))
    before = path.stat()
    digest = execstack.clear_execstack(str(path))
    patched = path.read_bytes()
    assert execstack.read_stack_request(str(path)).flags == RW
    assert [i for i, (a, b) in enumerate(zip(original, patched, strict=True)) if a != b] == [
        execstack.read_stack_request(str(path)).flags_offset]
    after = path.stat()
    assert (after.st_mode, after.st_uid, after.st_gid, after.st_mtime_ns) == (
        before.st_mode, before.st_uid, before.st_gid, before.st_mtime_ns)
    assert after.st_ino != before.st_ino, "replaced by rename, not rewritten in place"
    assert digest == execstack.sha256_of(str(path))
    assert os.listdir(path.parent) == ["engine_srv.so"], "no temporary file left"
    assert execstack.clear_execstack(str(path)) == digest  # already clear: untouched


def test_clear_refuses_a_library_without_a_stack_header(tmp_path):
    path = put(tmp_path / "old.so", elf(stack=None))
    with pytest.raises(execstack.ExecstackError, match="GLIBC_TUNABLES"):
        execstack.clear_execstack(str(path))
    assert path.read_bytes() == elf(stack=None)


def test_find_requesting_is_scoped_to_shared_objects_in_the_tree(tmp_path):
    root = tmp_path / "installation"
    put(root / "bin" / "engine_srv.so", elf())
    put(root / "bin" / "libstdc++.so.6", elf(elf64=True))
    put(root / "bin" / "dedicated_srv.so", elf(stack=RW))
    put(root / "srcds_linux", elf(e_type=2))  # executable: not ours to change
    put(root / "bin" / "notes.txt", elf())  # not a library name
    outside = put(tmp_path / "elsewhere" / "plugin.so", elf())
    (root / "bin" / "linked.so").symlink_to(outside)  # a link out of the install
    assert execstack.find_requesting(str(root)) == ["bin/engine_srv.so", "bin/libstdc++.so.6"]


def test_record_is_stable_and_written_only_when_it_changes(tmp_path):
    record = tmp_path / "installation.execstack.json"
    assert execstack.read_record(str(record)) == {}
    assert execstack.write_record(str(record), {}) is False and not record.exists()
    assert execstack.write_record(str(record), {"bin/b.so": "2", "bin/a.so": "1"}) is True
    assert record.stat().st_mode & 0o777 == 0o644
    stamp = record.stat().st_mtime_ns
    assert execstack.write_record(str(record), {"bin/a.so": "1", "bin/b.so": "2"}) is False
    assert record.stat().st_mtime_ns == stamp
    assert execstack.read_record(str(record)) == {"bin/a.so": "1", "bin/b.so": "2"}
    assert json.loads(record.read_text())["files"]["bin/a.so"] == {"sha256": "1"}
    record.write_text("{not json")
    assert execstack.read_record(str(record)) == {}


def test_plan_apply_rerun_restore_and_fix(tmp_path):
    root = tmp_path / "installation"
    engine = put(root / "bin" / "engine_srv.so", elf())
    first = execstack.plan(str(root), {})
    assert first.to_clear == ["bin/engine_srv.so"] and first.restored == []
    record = execstack.apply(str(root), first)
    assert record == {"bin/engine_srv.so": execstack.sha256_of(str(engine))}

    rerun = execstack.plan(str(root), record)
    assert not rerun.changes and rerun.record == record

    engine.write_bytes(elf())  # steamcmd's validate puts Valve's bytes back
    restored = execstack.plan(str(root), record)
    assert restored.to_clear == ["bin/engine_srv.so"] == restored.restored

    engine.write_bytes(elf(stack=RW) + b"fixed build")  # Valve ships a fixed library
    fixed = execstack.plan(str(root), record)
    assert not fixed.changes and fixed.record == {}
