"""A bounded, durable, in-order spool on disk for batches a store could not take yet."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ingest.writing.spool_frames import HEADER, Frame, Gap, framed, scan
from ingest.writing.spool_quarantine import Damage, Quarantine, SetAside
from ingest.writing.spool_records import Holds, Record, RecordError, decode, encode

SEGMENT_BYTES = 16 << 20
Raw = bytes  # (``Spool.bytes`` is a property)


class SpoolFull(Exception):
    """The spool has no room for this record: the caller must hold it (backpressure)."""


class Spool:
    """Append-only segment files ``NNNNNNNN.seg`` of length+crc framed records (``ingest.writing.spool_frames``,
    ``ingest.writing.spool_records``).

    ``append`` fsyncs before returning, so a record it accepted survives a crash. ``peek``
    returns the oldest record; ``pop`` drops it once it is stored and moves a cursor file
    (not fsynced: after a power loss a record may be replayed twice, which idempotent writes
    make harmless).

    Nothing is dropped silently: bytes that are not an intact record (a damaged record, a
    record cut short at a segment's end, e.g. by a crash mid-append), a record this release
    cannot read, and records of another destination's spool (``holds``) are moved to the
    :class:`~ingest.writing.spool_quarantine.Quarantine` in ``quarantine/`` with their reason, and
    :meth:`take_set_aside` hands each to the owner to report; the intact records before and
    after them replay.
    """

    def __init__(self, directory: Path, max_bytes: int, *, holds: Holds | None = None) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.holds = holds
        self.quarantine = Quarantine(directory / "quarantine")
        self._set_aside: list[SetAside] = []
        self._lock = threading.Lock()
        self._segments = sorted(int(p.stem) for p in self.dir.glob("*.seg") if p.stem.isdigit())
        self._cursor = self.dir / "cursor"
        self._read_offset = self._load_cursor()
        self._writer: Any = None
        self._records = 0
        self._size = 0
        for i, n in enumerate(self._segments):
            for frame in self._frames(n, self._read_offset if i == 0 else 0):
                self._records += 1
                self._size += HEADER.size + len(frame.data)
        self._head: tuple[int, int, Any] | None = None  # (segment, next offset, record)
        if self._segments and not self._records:
            self._peek()  # no record to replay: set aside what the segments hold, drop them

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

    def _frames(self, n: int, offset: int) -> Iterator[Frame]:
        with self._path(n).open("rb") as f:
            for part in scan(f, offset):
                if isinstance(part, Frame):
                    yield part

    @property
    def bytes(self) -> int:
        return self._size

    @property
    def records(self) -> int:
        return self._records

    def __len__(self) -> int:
        return self._records

    def append(self, record: Record) -> None:
        data = framed(encode(*record))
        with self._lock:
            if self._records and self._size + len(data) > self.max_bytes:
                raise SpoolFull(f"spool {self.dir} full ({self._size} of {self.max_bytes} bytes)")
            if self._writer is None or self._writer.tell() >= SEGMENT_BYTES:
                self._roll()
            self._writer.write(data)
            self._writer.flush()
            os.fsync(self._writer.fileno())
            self._size += len(data)
            self._records += 1

    def _roll(self) -> None:
        if self._writer is not None:
            self._writer.close()
        n = (self._segments[-1] + 1) if self._segments else 1
        self._segments.append(n)
        self._writer = self._path(n).open("ab")

    def peek(self) -> Record | None:
        """The oldest record this spool can replay; what it cannot is set aside on the way."""
        with self._lock:
            return self._peek()

    def _peek(self) -> Record | None:
        while self._segments:
            n = self._segments[0]
            record = self._next_in(n)
            if record is not None:
                return record
            if n not in self._segments:
                continue  # the segment was set aside whole
            if len(self._segments) == 1 and self._writer is not None:
                return None  # the tail segment is still being written and is drained
            self._drop_segment(n)
        return None

    def _next_in(self, n: int) -> Record | None:
        """The next record of segment ``n`` from the cursor; bad bytes on the way are set aside
        (the cursor moves past them), a segment of another destination's spool as a whole."""
        name = self._path(n).name
        with self._path(n).open("rb") as f:
            for part in scan(f, self._read_offset):
                if isinstance(part, Gap):
                    kind = Damage.TRUNCATED if part.truncated else Damage.DAMAGED
                    self._keep(part.data, kind, name, part.start, f"{part.detail} ({len(part.data)} bytes)")
                    self._advance(n, part.end)
                    continue
                try:
                    record = decode(part.data)
                except RecordError as e:
                    self._keep(framed(part.data), Damage.UNREADABLE, name, part.start, str(e))
                    self._forget(part, n)
                    continue
                why = self.holds.refuses(record) if self.holds is not None else None
                if why is None:
                    self._head = (n, part.end, part.data)
                    return record
                if part.start == 0 and not (self._writer is not None and n == self._segments[-1]):
                    frames = self._foreign_segment(n)
                    if frames is not None:
                        self._keep_segment(n, why, frames)
                        return None
                self._keep(framed(part.data), Damage.FOREIGN, name, part.start, f"another destination's record: {why}")
                self._forget(part, n)
        return None

    def _foreign_segment(self, n: int) -> list[Frame] | None:
        """Segment ``n``'s frames if none of them belongs to this spool, else None."""
        frames = list(self._frames(n, 0))
        for frame in frames:
            try:
                record = decode(frame.data)
            except RecordError:
                continue
            if self.holds is None or self.holds.refuses(record) is None:
                return None
        return frames

    def _keep(self, data: Raw, kind: Damage, segment: str, offset: int, detail: str) -> None:
        self._set_aside.append(self.quarantine.keep(data, kind, segment, offset, detail))

    def _keep_segment(self, n: int, why: str, frames: list[Frame]) -> None:
        """Move segment ``n`` (of another destination's spool) whole to the quarantine."""
        detail = f"a segment of another destination's spool: {why}"
        self._set_aside.append(self.quarantine.keep_file(self._path(n), Damage.FOREIGN, detail, len(frames)))
        self._records -= len(frames)
        self._size -= sum(HEADER.size + len(f.data) for f in frames)
        self._drop_segment(n)

    def _forget(self, frame: Frame, n: int) -> None:
        """An intact frame that was counted is set aside: uncount it, move past it."""
        self._records -= 1
        self._size -= HEADER.size + len(frame.data)
        self._advance(n, frame.end)

    def _advance(self, n: int, offset: int) -> None:
        self._read_offset = offset
        self._save_cursor(n, offset)

    def take_set_aside(self) -> list[SetAside]:
        """What was set aside since the last call (for the owner to log, count and report)."""
        with self._lock:
            out, self._set_aside = self._set_aside, []
        return out

    def pop(self) -> None:
        with self._lock:
            if self._head is None:
                return
            n, end, data = self._head
            self._head = None
            self._read_offset = end
            self._save_cursor(n, end)
            self._records -= 1
            self._size -= HEADER.size + len(data)
            if self._records == 0 and self._writer is not None:
                self._writer.close()
                self._writer = None
                for seg in list(self._segments):
                    self._drop_segment(seg)
            elif self._records == 0:
                self._peek()  # what follows the last record (e.g. a record cut short) is set aside now

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
