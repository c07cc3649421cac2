"""Steam-like avatars: a real baseline JPEG of one colour per avatar hash, in Steam's sizes.

Steam serves `<hash>.jpg` (32 px), `<hash>_medium.jpg` (64 px) and `<hash>_full.jpg`
(184 px). A browser must be able to draw them, so this writes a genuine JPEG (stdlib only):
every 8x8 block is flat, so each block is its DC coefficient and an end-of-block, coded with
the standard DC Huffman table and a one-symbol AC table.
"""

from __future__ import annotations

import hashlib
import struct

SIZES = {"": 32, "_medium": 64, "_full": 184}

# ITU T.81 Annex K.3: the luminance DC table (code lengths 1..16, then the symbols).
_DC_BITS = (0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0)
_DC_SYMBOLS = tuple(range(12))
# Only end-of-block (symbol 0x00) is ever coded in the AC part: one code of length 1.
_AC_BITS = (1,) + (0,) * 15
_AC_SYMBOLS = (0,)


def _codes(bits: tuple[int, ...], symbols: tuple[int, ...]) -> dict[int, tuple[int, int]]:
    """Canonical Huffman codes (T.81 Annex C): symbol -> (code, length)."""
    codes, code, index = {}, 0, 0
    for length, count in enumerate(bits, start=1):
        for _ in range(count):
            codes[symbols[index]] = (code, length)
            code, index = code + 1, index + 1
        code <<= 1
    return codes


_DC_CODES = _codes(_DC_BITS, _DC_SYMBOLS)
_EOB = _codes(_AC_BITS, _AC_SYMBOLS)[0]


class _Bits:
    def __init__(self) -> None:
        self.out, self.acc, self.count = bytearray(), 0, 0

    def put(self, value: int, length: int) -> None:
        for shift in range(length - 1, -1, -1):
            self.acc = (self.acc << 1) | ((value >> shift) & 1)
            self.count += 1
            if self.count == 8:
                self.out.append(self.acc)
                if self.acc == 0xFF:
                    self.out.append(0)  # byte stuffing
                self.acc, self.count = 0, 0

    def flush(self) -> bytes:
        if self.count:
            self.put((1 << (8 - self.count)) - 1, 8 - self.count)  # pad with ones
        return bytes(self.out)


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def colour(avatar_hash: str) -> tuple[int, int, int]:
    digest = hashlib.sha1(avatar_hash.encode()).digest()
    return 64 + digest[0] % 160, 64 + digest[1] % 160, 64 + digest[2] % 160


def jpeg(rgb: tuple[int, int, int], size: int) -> bytes:
    """A `size` x `size` baseline JPEG (YCbCr, no subsampling) filled with one colour."""
    red, green, blue = rgb
    ycc = (0.299 * red + 0.587 * green + 0.114 * blue,
           128 - 0.168736 * red - 0.331264 * green + 0.5 * blue,
           128 + 0.5 * red - 0.418688 * green - 0.081312 * blue)
    # A flat block's only coefficient: DC = 8 x (sample - 128) with a quantiser of 1.
    dc = [round(8 * (value - 128)) for value in ycc]
    header = b"\xff\xd8" + _segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    header += _segment(0xDB, b"\x00" + b"\x01" * 64)  # table 0: every quantiser 1
    header += _segment(0xC0, struct.pack(">BHHB", 8, size, size, 3)
                       + b"\x01\x11\x00\x02\x11\x00\x03\x11\x00")
    header += _segment(0xC4, b"\x00" + bytes(_DC_BITS) + bytes(_DC_SYMBOLS))
    header += _segment(0xC4, b"\x10" + bytes(_AC_BITS) + bytes(_AC_SYMBOLS))
    header += _segment(0xDA, b"\x03\x01\x00\x02\x00\x03\x00\x00\x3f\x00")
    bits, previous = _Bits(), [0, 0, 0]
    blocks = ((size + 7) // 8) ** 2
    for _ in range(blocks):
        for component in range(3):
            diff = dc[component] - previous[component]
            previous[component] = dc[component]
            category = abs(diff).bit_length()
            bits.put(*_DC_CODES[category])
            if category:
                bits.put(diff if diff > 0 else diff + (1 << category) - 1, category)
            bits.put(*_EOB)
    return header + bits.flush() + b"\xff\xd9"


def avatar(avatar_hash: str, suffix: str) -> bytes | None:
    """The avatar file for `<hash><suffix>.jpg`, or None for a size Steam does not serve."""
    size = SIZES.get(suffix)
    return None if size is None else jpeg(colour(avatar_hash), size)
