"""Minimal ELF shared objects for the stand-in install: loadable by glibc, no code inside.

Each is one read-write PT_LOAD covering the file, a PT_DYNAMIC with empty string and symbol
tables, and a PT_GNU_STACK whose PF_X bit says whether the library requests an executable
stack, as a real `ld -z execstack` (or a missing `.note.GNU-stack`) leaves it. glibc 2.41+
refuses to dlopen the ones that request it; older glibc makes the stack executable.
"""

from __future__ import annotations

import struct

PT_LOAD, PT_DYNAMIC, PT_GNU_STACK = 1, 2, 0x6474E551
PF_X, PF_W, PF_R = 1, 2, 4
DT_NULL, DT_STRTAB, DT_SYMTAB, DT_STRSZ, DT_SYMENT = 0, 5, 6, 10, 11
EM_386, EM_X86_64 = 3, 62
ET_DYN = 3


def shared_object(payload: bytes, *, execstack: bool = False, elf64: bool = False) -> bytes:
    """A little-endian x86 (ELF32) or x86-64 (ELF64) shared object carrying `payload`."""
    word = "Q" if elf64 else "I"
    ehsize, phentsize, dynsize, symsize = (64, 56, 16, 24) if elf64 else (52, 32, 8, 16)
    phnum = 3
    dynamic_at = ehsize + phentsize * phnum
    strtab_at = dynamic_at + dynsize * 5
    symtab_at = strtab_at + 8  # "\0" padded to 8
    payload_at = symtab_at + symsize
    total = payload_at + len(payload)

    ident = b"\x7fELF" + bytes([2 if elf64 else 1, 1, 1, 0]) + b"\x00" * 8
    header = ident + struct.pack(
        f"<HHI{word}{word}{word}IHHHHHH",
        ET_DYN, EM_X86_64 if elf64 else EM_386, 1,  # type, machine, version
        0, ehsize, 0,  # entry, program headers right after this header, no section headers
        0, ehsize, phentsize, phnum, 0, 0, 0,  # flags, sizes, counts, shstrndx
    )  # fmt: skip

    def program_header(kind: int, flags: int, offset: int, size: int, align: int) -> bytes:
        if elf64:
            return struct.pack("<IIQQQQQQ", kind, flags, offset, offset, offset, size, size, align)
        return struct.pack("<IIIIIIII", kind, offset, offset, offset, size, size, flags, align)

    stack_flags = PF_R | PF_W | (PF_X if execstack else 0)
    headers = (
        program_header(PT_LOAD, PF_R | PF_W, 0, total, 0x1000)
        + program_header(PT_DYNAMIC, PF_R | PF_W, dynamic_at, dynsize * 5, 8 if elf64 else 4)
        + program_header(PT_GNU_STACK, stack_flags, 0, 0, 16)
    )
    dynamic = b"".join(
        struct.pack(f"<{'q' if elf64 else 'i'}{word}", tag, value)
        for tag, value in ((DT_STRTAB, strtab_at), (DT_SYMTAB, symtab_at), (DT_STRSZ, 1),
                           (DT_SYMENT, symsize), (DT_NULL, 0))
    )
    body = header + headers + dynamic + b"\x00" * 8 + b"\x00" * symsize + payload
    assert len(body) == total
    return body
