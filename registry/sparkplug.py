"""Sparkplug B births in the registry database: the persistent ``SparkplugState``
(``core.sparkplug``) the daemon decodes with, shared by its workers.

Each process keeps a cache in front of the table. A birth this process reads is written through
(and cached); a birth another worker read is found on the first message that needs it (a miss is
never cached), and a cached birth is re-read after ``revalidate_s`` so a rebirth read by another
worker (which may reassign aliases) is seen within that time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from core.sparkplug import BirthRecord, MetricInfo
from registry import tables

_T = tables.sparkplug_births
_NODE = ""


def _rows(record: BirthRecord) -> list[list[object]]:
    by_field = {info.field: alias for alias, info in record.aliases.items()}
    return [[by_field.get(info.field), name, info.field, info.datatype] for name, info in record.names.items()]


def _record(metrics: list[list[object]], bd_seq: str | None) -> BirthRecord:
    aliases: dict[int, MetricInfo] = {}
    names: dict[str, MetricInfo] = {}
    for alias, name, field, datatype in metrics:
        info = MetricInfo(str(field), int(datatype))  # type: ignore[call-overload]
        names[str(name)] = info
        if alias is not None:
            aliases[int(alias)] = info  # type: ignore[call-overload]
    return BirthRecord(aliases, names, int(bd_seq) if bd_seq is not None else None)


class SqlSparkplugState:
    """A ``SparkplugState`` kept in the ``sparkplug_births`` table (module docstring)."""

    def __init__(
        self, engine: Engine, *, revalidate_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.engine = engine
        self.revalidate_s = revalidate_s
        self.clock = clock
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], tuple[BirthRecord, float]] = {}

    def born(self, node_id: str, device_id: str | None, record: BirthRecord, at: float) -> None:
        key = (node_id, device_id or _NODE)
        bd_seq = str(record.bd_seq) if record.bd_seq is not None else None
        try:
            with self.engine.begin() as conn:
                if device_id is None:  # a node birth starts a new session: its devices are born again
                    conn.execute(delete(_T).where(_T.c.node_id == node_id, _T.c.device_id == _NODE))
                    # ... but a device birth after it, filed first by another worker, is of the new session
                    conn.execute(delete(_T).where(_T.c.node_id == node_id, _T.c.born_at < at))
                else:
                    conn.execute(delete(_T).where(_T.c.node_id == node_id, _T.c.device_id == key[1]))
                conn.execute(
                    insert(_T).values(
                        node_id=node_id, device_id=key[1], bd_seq=bd_seq, metrics=_rows(record), born_at=at
                    )
                )
        except IntegrityError:  # the same birth filed at the same moment by another process (a worker
            # and the alert evaluator both decode it): the newer one stays
            with self.engine.begin() as conn:
                conn.execute(
                    update(_T)
                    .where(_T.c.node_id == node_id, _T.c.device_id == key[1], _T.c.born_at <= at)
                    .values(bd_seq=bd_seq, metrics=_rows(record), born_at=at)
                )
        with self._lock:
            if device_id is None:  # re-read from the table on next use (module docstring)
                for k in [k for k in self._cache if k[0] == node_id]:
                    del self._cache[k]
            self._cache[key] = (record, self.clock())

    def birth(self, node_id: str, device_id: str | None) -> BirthRecord | None:
        key = (node_id, device_id or _NODE)
        now = self.clock()
        cached = self._cache.get(key)
        if cached is not None and now - cached[1] < self.revalidate_s:
            return cached[0]
        with self.engine.connect() as conn:
            row = conn.execute(
                select(_T.c.metrics, _T.c.bd_seq).where(_T.c.node_id == key[0], _T.c.device_id == key[1])
            ).first()
        with self._lock:
            if row is None:
                self._cache.pop(key, None)
                return None
            record = _record(row.metrics, row.bd_seq)
            self._cache[key] = (record, now)
            return record

    def devices(self, node_id: str) -> list[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(_T.c.device_id).where(_T.c.node_id == node_id, _T.c.device_id != _NODE)).all()
        return sorted(r.device_id for r in rows)
