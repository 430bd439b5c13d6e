"""Reads and patches the HDF5 superblock (version 2/3) of a trajectory file: the "open for write" flags a
killed SWMR writer leaves behind, and its end-of-allocation address."""

from __future__ import annotations

import os
import struct
from pathlib import Path

SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _lookup3(data: bytes) -> int:
    """Bob Jenkins' lookup3 `hashlittle` with seed 0: the checksum HDF5 puts on its superblock."""
    mask = 0xFFFFFFFF

    def rot(x: int, k: int) -> int:
        return ((x << k) | (x >> (32 - k))) & mask

    length = len(data)
    a = b = c = (0xDEADBEEF + length) & mask
    i = 0
    while length - i > 12:
        a = (a + int.from_bytes(data[i : i + 4], "little")) & mask
        b = (b + int.from_bytes(data[i + 4 : i + 8], "little")) & mask
        c = (c + int.from_bytes(data[i + 8 : i + 12], "little")) & mask
        a = ((a - c) & mask) ^ rot(c, 4)
        c = (c + b) & mask
        b = ((b - a) & mask) ^ rot(a, 6)
        a = (a + c) & mask
        c = ((c - b) & mask) ^ rot(b, 8)
        b = (b + a) & mask
        a = ((a - c) & mask) ^ rot(c, 16)
        c = (c + b) & mask
        b = ((b - a) & mask) ^ rot(a, 19)
        a = (a + c) & mask
        c = ((c - b) & mask) ^ rot(b, 4)
        b = (b + a) & mask
        i += 12
    if length == i:
        return c
    tail = data[i:] + bytes(12 - (length - i))
    a = (a + int.from_bytes(tail[0:4], "little")) & mask
    b = (b + int.from_bytes(tail[4:8], "little")) & mask
    c = (c + int.from_bytes(tail[8:12], "little")) & mask
    c = (c ^ b) - rot(b, 14) & mask
    a = (a ^ c) - rot(c, 11) & mask
    b = (b ^ a) - rot(a, 25) & mask
    c = (c ^ b) - rot(b, 16) & mask
    a = (a ^ c) - rot(c, 4) & mask
    b = (b ^ a) - rot(a, 14) & mask
    c = (c ^ b) - rot(b, 24) & mask
    return c


def clear_crashed_writer_flags(path: str | Path) -> bool:
    """Make a file left by a killed SWMR writer openable for writing again; True if it needed it.

    A killed writer leaves the "open for write" flags in the version-3 superblock, and its
    on-disk end-of-allocation lags the real file size. This is what `h5clear -s --increment`
    does: clear the flags and move the end of allocation to the end of the file, so new data
    never lands on top of space the killed writer used.
    """
    size = os.path.getsize(path)
    with open(path, "r+b") as fh:
        superblock = bytearray(fh.read(48))
        if superblock[:8] != SIGNATURE or superblock[8] < 2 or superblock[11] == 0:
            return False
        superblock[11] = 0
        end_of_allocation = struct.unpack_from("<Q", superblock, 28)[0]
        struct.pack_into("<Q", superblock, 28, max(end_of_allocation, size))
        struct.pack_into("<I", superblock, 44, _lookup3(bytes(superblock[:44])))
        fh.seek(0)
        fh.write(superblock)
        fh.flush()
        os.fsync(fh.fileno())
    return True


def missing_bytes(path: str | Path) -> int:
    """How many bytes a cleanly closed file lacks at its end (0 if none, or if it cannot tell).

    HDF5 sizes a closed file to its end-of-allocation, so a shorter file was cut: copied or
    downloaded in part. A file whose writer is live or was killed keeps its flags set and its
    end-of-allocation may run ahead of the bytes written so far, so it is never called truncated.
    """
    with open(path, "rb") as fh:
        superblock = fh.read(48)
    if len(superblock) < 48 or superblock[:8] != SIGNATURE or superblock[8] < 2 or superblock[11] != 0:
        return 0
    base_address = struct.unpack_from("<Q", superblock, 12)[0]
    end_of_allocation = struct.unpack_from("<Q", superblock, 28)[0]
    return max(0, base_address + end_of_allocation - os.path.getsize(path))
