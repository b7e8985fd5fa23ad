"""Which field keys each device wrote, kept next to the data so "latest values of device D" can
be read without touching other devices' keys. Pure: builds lines, parses nothing, does no I/O.

InfluxDB 1.x knows field keys per measurement only: ``SELECT last(*)`` or ``SHOW FIELD KEYS``
cost grows with every key any device ever wrote (32,002 keys from one device made each
``iot devices show`` take 4-7 s). So the 1.x store also writes, per (device, measurement,
field, type) and day, one point of the tiny measurement :data:`MEASUREMENT`:

    iot_fields,device_id=D,field=F,measurement=M,type=float seen=true <day>

Reading D's keys is then a tag-indexed query over D's own series. One line per key per day
(on the day of the data, so the index expires with the data under a retention policy);
:class:`FieldIndex` remembers what it already wrote (bounded) so steady traffic adds nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from core.model import Point
from ingest.stores.lineprotocol import escape_key
from ingest.stores.partial_writes import Encoded, SendFn, SendResult, write_points

log = logging.getLogger("iot.stores")

MEASUREMENT = "iot_fields"
DAY_NS = 86_400 * 10**9

Entry = tuple[str, str, int]  # device_id, measurement, day (ns)


def field_type(value: object) -> str:
    t = type(value)
    return "boolean" if t is bool else "string" if t is str else "float"


class FieldIndex:
    """Index lines for points, minus what this process already wrote. Not thread-safe (one writer)."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._written: dict[Entry, set[str]] = {}

    def pending(self, points: Iterable[Point]) -> tuple[list[str], dict[Entry, set[str]]]:
        """Lines to write for ``points`` and what to :meth:`commit` once they are written."""
        todo: dict[Entry, dict[str, str]] = {}
        written = self._written
        for p in points:
            entry = (p.device_id, p.measurement, p.ts_ns - p.ts_ns % DAY_NS)
            known = written.get(entry)
            if known is not None and known.issuperset(p.fields):
                continue
            new = todo.setdefault(entry, {})
            for k, v in p.fields.items():
                if (known is None or k not in known) and k not in new:
                    new[k] = field_type(v)
        lines: list[str] = []
        for (device, measurement, day), fields in todo.items():
            head = f"{MEASUREMENT},device_id={escape_key(device)},field="
            tail = f",measurement={escape_key(measurement)},type="
            lines.extend(f"{head}{escape_key(k)}{tail}{t} seen=true {day}" for k, t in fields.items())
        return lines, {e: set(f) for e, f in todo.items()}

    def commit(self, done: dict[Entry, set[str]]) -> None:
        if len(self._written) + len(done) > self.max_entries:
            self._written.clear()
        for entry, fields in done.items():
            self._written.setdefault(entry, set()).update(fields)


def write_indexed(
    points: Sequence[Point], send: SendFn, index: FieldIndex, store: str, encoded: Encoded | None = None
) -> list[tuple[Point, str]]:
    """Write ``points`` (refused ones returned; ``encoded``: see :func:`write_points`), then the
    index lines of the stored ones."""
    refused = write_points(points, send, encoded)
    bad = {id(p) for p, _ in refused}
    lines, done = index.pending(p for p in points if id(p) not in bad)
    if lines:
        error: SendResult = send(lines)
        if error is None:
            index.commit(done)
        else:  # e.g. max-values-per-tag: the data is stored; `devices show` may miss new keys
            log.warning("%s: field index write refused: %s", store, str(error)[:200])
    return refused
