"""Deterministic VPK (version 1) content shared by the fake steamcmd and the fake Web API."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from pathlib import Path

VPK_SIGNATURE = 0x55AA1234
VPK_VERSION = 1
# An empty directory tree is a single NUL (no extensions); real readers accept it.
_EMPTY_TREE = b"\x00"
VPK_HEADER = struct.pack("<III", VPK_SIGNATURE, VPK_VERSION, len(_EMPTY_TREE)) + _EMPTY_TREE
_BLOCK_SIZE = 64 * 1024


def is_vpk(path: Path) -> bool:
    """True when the file starts with the VPK signature (what srcds checks before mounting)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError:
        return False
    return len(head) == 4 and struct.unpack("<I", head)[0] == VPK_SIGNATURE


def _filler_block(seed: str, index: int) -> bytes:
    # Repeating one digest keeps generation cheap enough for multi-gigabyte benchmark files.
    digest = hashlib.sha256(f"{seed}:{index}".encode()).digest()
    return digest * (_BLOCK_SIZE // len(digest))


def vpk_bytes(seed: str, size: int, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """Yield bytes [start, end) of a deterministic VPK of `size` bytes identified by `seed`."""
    stop = size if end is None else min(end, size)
    position = start
    while position < stop:
        block_index, offset = divmod(position, _BLOCK_SIZE)
        block = bytearray(_filler_block(seed, block_index))
        if block_index == 0:
            header = VPK_HEADER[: min(len(VPK_HEADER), _BLOCK_SIZE)]
            block[: len(header)] = header
        chunk = bytes(block[offset : min(_BLOCK_SIZE, offset + stop - position)])
        yield chunk
        position += len(chunk)


def write_vpk(path: Path, seed: str, size: int) -> None:
    """Write a complete deterministic VPK file (used for small workshop items)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        for chunk in vpk_bytes(seed, max(size, len(VPK_HEADER))):
            handle.write(chunk)


def default_item_size(item_id: int) -> int:
    """Size of a workshop item neither side was told about; shared so both sides agree."""
    return 32 * 1024 + (item_id % 97) * 1024


def item_seed(item_id: int, revision: int) -> str:
    """Content identity of one revision of a workshop item (same bytes from steamcmd and API)."""
    return f"workshop:{item_id}:{revision}"
