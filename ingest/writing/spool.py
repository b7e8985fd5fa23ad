"""A bounded, durable, in-order spool on disk for batches a store could not take yet."""

from __future__ import annotations

import os
import struct
import threading
import zlib
from pathlib import Path
from typing import Any

from ingest.writing.spool_records import Record, decode, encode

_HEADER = struct.Struct("<II")  # length, crc32
SEGMENT_BYTES = 16 << 20


class SpoolFull(Exception):
    """The spool has no room for this record: the caller must hold it (backpressure)."""


class Spool:
    """Append-only segment files ``NNNNNNNN.seg`` of length+crc framed records (``ingest.writing.spool_records``).

    ``append`` fsyncs before returning, so a record it accepted survives a crash. ``peek``
    returns the oldest record; ``pop`` drops it once it is stored and moves a cursor file
    (not fsynced: after a power loss a record may be replayed twice, which idempotent writes
    make harmless). A torn
    record at the tail of a segment (crash mid-append) is detected by its crc and ignored.
    """

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._segments = sorted(int(p.stem) for p in self.dir.glob("*.seg"))
        self._cursor = self.dir / "cursor"
        self._read_offset = self._load_cursor()
        self._writer: Any = None
        self._records = 0
        self._size = 0
        for i, n in enumerate(self._segments):
            for end, data in self._scan(n, self._read_offset if i == 0 else 0):
                self._records += 1
                self._size += _HEADER.size + len(data)
                del end
        self._head: tuple[int, int, Any] | None = None  # (segment, next offset, record)

    def _load_cursor(self) -> int:
        try:
            seg, offset = (int(x) for x in self._cursor.read_text().split())
        except (OSError, ValueError):
            return 0
        return offset if self._segments and seg == self._segments[0] else 0

    def _save_cursor(self, seg: int, offset: int) -> None:
        tmp = self._cursor.with_suffix(".tmp")
        tmp.write_text(f"{seg} {offset}\n")
        os.replace(tmp, self._cursor)

    def _path(self, n: int) -> Path:
        return self.dir / f"{n:08d}.seg"

    def _scan(self, n: int, offset: int) -> Any:
        with self._path(n).open("rb") as f:
            f.seek(offset)
            while True:
                header = f.read(_HEADER.size)
                if len(header) < _HEADER.size:
                    return
                length, crc = _HEADER.unpack(header)
                data = f.read(length)
                if len(data) < length or zlib.crc32(data) != crc:
                    return
                yield f.tell(), data

    @property
    def bytes(self) -> int:
        return self._size

    @property
    def records(self) -> int:
        return self._records

    def __len__(self) -> int:
        return self._records

    def append(self, record: Record) -> None:
        data = encode(*record)
        framed = _HEADER.pack(len(data), zlib.crc32(data)) + data
        with self._lock:
            if self._records and self._size + len(framed) > self.max_bytes:
                raise SpoolFull(f"spool {self.dir} full ({self._size} of {self.max_bytes} bytes)")
            if self._writer is None or self._writer.tell() >= SEGMENT_BYTES:
                self._roll()
            self._writer.write(framed)
            self._writer.flush()
            os.fsync(self._writer.fileno())
            self._size += len(framed)
            self._records += 1

    def _roll(self) -> None:
        if self._writer is not None:
            self._writer.close()
        n = (self._segments[-1] + 1) if self._segments else 1
        self._segments.append(n)
        self._writer = self._path(n).open("ab")

    def peek(self) -> Record | None:
        """The oldest record; raises ``RecordError`` for one this release cannot read."""
        with self._lock:
            while self._segments:
                n = self._segments[0]
                for end, data in self._scan(n, self._read_offset):
                    self._head = (n, end, data)
                    return decode(data)
                if len(self._segments) == 1 and self._writer is not None:
                    return None  # the tail segment is still being written and is drained
                self._drop_segment(n)
            return None

    def pop(self) -> None:
        with self._lock:
            if self._head is None:
                return
            n, end, data = self._head
            self._head = None
            self._read_offset = end
            self._save_cursor(n, end)
            self._records -= 1
            self._size -= _HEADER.size + len(data)
            if self._records == 0 and self._writer is not None:
                self._writer.close()
                self._writer = None
                for seg in list(self._segments):
                    self._drop_segment(seg)

    def _drop_segment(self, n: int) -> None:
        self._segments.remove(n)
        self._read_offset = 0
        self._cursor.unlink(missing_ok=True)
        self._path(n).unlink(missing_ok=True)
        if not self._segments:
            self._size = 0

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
