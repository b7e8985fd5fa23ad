"""How records sit in a spool segment, and a reader that survives damage.

Each record is framed as ``<length: u32 LE><crc32 of the data: u32 LE><data>``; the data's first
byte is a record version (``ingest.writing.spool_records``). :func:`scan` yields every intact record
(:class:`Frame`) and, between them, every run of bytes that is not one (:class:`Gap`): after a
bad record it resynchronises on the next offset holding a plausible header whose checksum
matches, so one damaged record never hides the records after it.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

HEADER = struct.Struct("<II")  # length, crc32
_FIRST_BYTE = re.compile(rb"[\x01\x02\x80]")
"""The first data byte of every record a release ever wrote: versions 1 and 2, and pickles (0x80).
A resync candidate is a header just before one of these (JSON records are ASCII: no false starts)."""


def framed(data: bytes) -> bytes:
    """``data`` as it sits in a segment: header then data."""
    return HEADER.pack(len(data), zlib.crc32(data)) + data


@dataclass(frozen=True, slots=True)
class Frame:
    """An intact record: its data, and where its frame starts and ends in the segment."""

    start: int
    end: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Gap:
    """Bytes ``[start, end)`` of a segment that are not an intact record.

    ``truncated``: the gap is a record cut short at the end of the segment (its header declares
    more bytes than follow, or the header itself is cut); otherwise the bytes are damaged."""

    start: int
    end: int
    data: bytes
    truncated: bool
    detail: str


def _intact(buf: bytes, at: int) -> int:
    """The end of an intact frame at ``buf[at:]``, or -1."""
    if at < 0 or len(buf) - at < HEADER.size:
        return -1
    length, crc = HEADER.unpack_from(buf, at)
    end: int = at + HEADER.size + length
    if length == 0 or end > len(buf) or zlib.crc32(buf[at + HEADER.size : end]) != crc:
        return -1
    return end


def _resync(rest: bytes) -> int:
    """The offset in ``rest`` (``rest[0]`` is a bad frame) of the next intact frame, or -1."""
    for m in _FIRST_BYTE.finditer(rest, HEADER.size + 1):
        at = m.start() - HEADER.size
        if _intact(rest, at) >= 0:
            return at
    return -1


def _why(rest: bytes) -> tuple[bool, str]:
    """Why the frame at ``rest[0]`` is bad: (cut short, in words)."""
    if len(rest) < HEADER.size:
        return True, f"a record header cut short ({len(rest)} of {HEADER.size} bytes)"
    length, _ = HEADER.unpack_from(rest)
    if length == 0:
        return False, "a record header declaring no data"
    if HEADER.size + length > len(rest):
        return True, f"a record declaring {length} bytes, only {len(rest) - HEADER.size} follow"
    return False, "a record whose checksum does not match its bytes"


def scan(f: BinaryIO, offset: int) -> Iterator[Frame | Gap]:
    """Frames and gaps of the open segment ``f`` from ``offset`` to its end, in order.

    Reads only header and data per intact frame; after a bad one, reads the rest of the segment
    to find the next intact frame. The consumer may use ``f`` between items."""
    size = os.fstat(f.fileno()).st_size
    pos = offset
    while pos < size:
        f.seek(pos)
        header = f.read(HEADER.size)
        if len(header) == HEADER.size:
            length, crc = HEADER.unpack(header)
            end = pos + HEADER.size + length
            if length and end <= size:
                data = f.read(length)
                if len(data) == length and zlib.crc32(data) == crc:
                    yield Frame(pos, end, data)
                    pos = end
                    continue
        f.seek(pos)
        rest = f.read(size - pos)
        cut, detail = _why(rest)
        nxt = _resync(rest)
        if nxt < 0:
            yield Gap(pos, pos + len(rest), rest, cut, detail)
            return
        yield Gap(pos, pos + nxt, rest[:nxt], False, detail)
        pos += nxt
