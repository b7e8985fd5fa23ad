"""Where a spool puts the bytes it cannot replay: its ``quarantine/`` folder, never the bin.

Each entry is ``<ns>-<segment>-<offset>-<kind>.bad`` (the raw bytes, exactly as they sat in the
segment: a damaged run, a record cut short, an unreadable record, or a whole segment of another
destination's spool) and a ``.reason`` beside it (JSON: kind, detail, segment, offset, size,
records). The folder stays until an operator has examined and removed them; while it holds
anything the daemon reports itself degraded.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path


class Damage(StrEnum):
    """Why bytes of a spool segment were set aside."""

    DAMAGED = "damaged"  # not an intact record (checksum mismatch, garbage) with intact records after it or not
    TRUNCATED = "truncated"  # the segment's last record is cut short
    UNREADABLE = "unreadable"  # intact framing, but no record this release can read
    FOREIGN = "foreign"  # records of another destination's spool


@dataclass(frozen=True, slots=True)
class SetAside:
    """One quarantine entry: what, from where, how big, and where its bytes now are."""

    kind: Damage
    detail: str
    segment: str
    offset: int
    size: int
    records: int  # records it held as far as can be told (a damaged run: 1)
    path: Path


def _printable(detail: str) -> str:
    """One line of ASCII: a detail may quote bytes of a record (data, never markup or log lines)."""
    return detail[:300].encode("unicode_escape").decode("ascii")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Quarantine:
    """One spool's quarantine folder (created on first use)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def _entry(self, kind: Damage, segment: str, offset: int) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        return self.dir / f"{time.time_ns()}-{Path(segment).stem}-{offset}-{kind.value}.bad"

    def _note(self, entry: SetAside) -> SetAside:
        body = {k: v for k, v in asdict(entry).items() if k != "path"}
        reason = entry.path.with_suffix(".reason")
        with reason.open("w") as f:
            json.dump(body, f, indent=1)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(self.dir)
        return entry

    def keep(self, data: bytes, kind: Damage, segment: str, offset: int, detail: str, records: int = 1) -> SetAside:
        """Write ``data`` (bytes from ``segment`` at ``offset``) and its reason, fsynced."""
        detail = _printable(detail)
        path = self._entry(kind, segment, offset)
        with path.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return self._note(SetAside(kind, detail, segment, offset, len(data), records, path))

    def keep_file(self, segment: Path, kind: Damage, detail: str, records: int) -> SetAside:
        """Move a whole segment file here (same filesystem: a rename) with its reason."""
        detail = _printable(detail)
        path = self._entry(kind, segment.name, 0)
        size = segment.stat().st_size
        os.replace(segment, path)
        return self._note(SetAside(kind, detail, segment.name, 0, size, records, path))

    def held(self) -> Counter[Damage]:
        """Entries in the folder now, by kind (an operator removes them once examined)."""
        out: Counter[Damage] = Counter()
        try:
            names = [p.stem for p in self.dir.glob("*.bad")]
        except OSError:
            return out
        for stem in names:
            try:
                out[Damage(stem.rsplit("-", 1)[-1])] += 1
            except ValueError:
                continue
        return out
