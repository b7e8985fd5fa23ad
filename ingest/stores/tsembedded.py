"""The embedded time-series default: one SQLite file, InfluxDB semantics.

A point is a row keyed by (measurement, series, ts_ns); writing the same series and time again
merges the fields (new values win, other fields kept), as InfluxDB does. Like InfluxDB, a field
keeps the type it was first written with per measurement: a later value of another type is
refused with a reason. One transaction per batch; WAL mode; one connection behind a lock
(one writer thread plus occasional readers).
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from core.model import Point
from core.stores import Row, SeriesQuery, StoreConfigError, StoreUnavailable
from ingest.stores import tsrollup
from ingest.stores.retention import DownsampleInfo, RetentionInfo
from ingest.stores.tsquery import NUMERIC_AGGS, as_value, check_query

FILENAME = "timeseries.sqlite3"
PRUNE_EVERY_S = 600.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    measurement TEXT NOT NULL,
    series TEXT NOT NULL,
    device_id TEXT NOT NULL,
    tags TEXT NOT NULL,
    ts_ns INTEGER NOT NULL,
    fields TEXT NOT NULL,
    PRIMARY KEY (measurement, series, ts_ns)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS points_device ON points (measurement, device_id, ts_ns);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS field_types (
    measurement TEXT NOT NULL,
    field TEXT NOT NULL,
    type TEXT NOT NULL,
    PRIMARY KEY (measurement, field)
) WITHOUT ROWID;
"""
_UPSERT = """
INSERT INTO points (measurement, series, device_id, tags, ts_ns, fields) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (measurement, series, ts_ns) DO UPDATE SET fields = json_patch(fields, excluded.fields)
"""
_compact = json.JSONEncoder(separators=(",", ":")).encode
_sorted = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode
_SQL_AGG = {"mean": "avg(j.value)", "min": "min(j.value)", "max": "max(j.value)", "count": "count(*)"}


def _type_of(v: object) -> str:
    t = type(v)
    if t is bool:
        return "boolean"
    if t is str:
        return "string"
    if isinstance(v, int | float):
        return "float"
    raise TypeError(t.__name__)


def _value(v: Any, jtype: str) -> Any:
    if jtype == "true":
        return True
    if jtype == "false":
        return False
    if jtype in ("integer", "real"):
        return float(v)
    return v


class EmbeddedTimeSeriesStore:
    """Time series in a SQLite file. See :class:`ingest.stores.TimeSeriesStore`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._types: dict[tuple[str, str], str] = {}
        self._retention_s: int | None = None
        self._downsample_s: int | None = None
        self._next_prune = 0.0

    @classmethod
    def from_url(
        cls, url: str, *, token: str | None = None, data_dir: Path | None = None, **_: object
    ) -> EmbeddedTimeSeriesStore:
        if url in ("", "embedded"):
            return cls((data_dir or Path(".iot-data")) / FILENAME)
        u = urlsplit(url)
        path = unquote(u.path)
        if u.scheme != "sqlite" or not path.startswith("/") or path == "/":
            raise StoreConfigError("embedded time-series URL must be 'embedded' or sqlite:///PATH")
        # sqlite:///rel/x -> "rel/x" (relative), sqlite:////abs/x -> "/abs/x"
        return cls(Path(path[1:]))

    def __repr__(self) -> str:
        return f"EmbeddedTimeSeriesStore({self.path})"

    def connect(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            self._types = {(m, f): t for m, f, t in db.execute("SELECT * FROM field_types")}
            row = db.execute("SELECT value FROM meta WHERE key = 'retention_s'").fetchone()
            self._retention_s = int(row[0]) if row else None
            self._downsample_s = tsrollup.get_config(db)[0]
        except (sqlite3.Error, OSError) as e:
            raise StoreUnavailable(f"{self!r}: {e}") from None
        self._db = db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreUnavailable(f"{self!r} is not connected")
        return self._db

    def write(self, points: Sequence[Point]) -> list[tuple[Point, str]]:
        rejected: list[tuple[Point, str]] = []
        rows = []
        new_types: dict[tuple[str, str], str] = {}
        types = self._types
        for p in points:
            reason = None
            for k, v in p.fields.items():
                try:
                    t = _type_of(v)
                except TypeError as e:
                    reason = f"field {k[:40]!r} has unsupported type {e}"
                    break
                if t == "float" and not math.isfinite(v):  # type: ignore[arg-type]
                    reason = f"field {k[:40]!r} is not finite"
                    break
                known = types.get((p.measurement, k)) or new_types.get((p.measurement, k))
                if known is not None and known != t:
                    reason = (
                        f"field type conflict: field {k!r} on measurement "
                        f"{p.measurement!r} is type {t}, already exists as type {known}"
                    )
                    break
            if reason is None and not p.fields:
                reason = "no fields"
            if reason is not None:
                rejected.append((p, reason))
                continue
            for k, v in p.fields.items():
                if (p.measurement, k) not in types:
                    new_types.setdefault((p.measurement, k), _type_of(v))
            tags = {k: v for k, v in p.tags.items() if k != "device_id" and v != ""}
            fields = {k: v if type(v) in (bool, str) else float(v) for k, v in p.fields.items()}
            series = _compact([p.device_id, sorted(tags.items())])
            rows.append((p.measurement, series, p.device_id, _sorted(tags), int(p.ts_ns), _compact(fields)))
        with self._lock:
            db = self._conn()
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    db.executemany(_UPSERT, rows)
                    db.executemany(
                        "INSERT OR IGNORE INTO field_types VALUES (?, ?, ?)",
                        [(m, f, t) for (m, f), t in new_types.items()],
                    )
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            except sqlite3.Error as e:
                raise StoreUnavailable(f"{self!r}: {e}") from None
            self._types.update(new_types)
        if (self._retention_s or self._downsample_s) and time.monotonic() >= self._next_prune:
            self.prune()
        return rejected

    # -- retention (see ingest.stores.retention) ----------------------------------------------------

    def retention(self) -> RetentionInfo:
        return RetentionInfo(self._retention_s, f"embedded store {self.path.name} (pruned every {PRUNE_EVERY_S:g}s)")

    def set_retention(self, seconds: int | None) -> RetentionInfo:
        with self._lock:
            db = self._conn()
            if seconds is None:
                db.execute("DELETE FROM meta WHERE key = 'retention_s'")
            else:
                db.execute("INSERT OR REPLACE INTO meta VALUES ('retention_s', ?)", (str(seconds),))
            self._retention_s = seconds
        self.prune()
        return self.retention()

    def prune(self, now_ns: int | None = None) -> int:
        """Roll up whole buckets (if downsampling), then delete raw points older than the
        retention (rollups are kept); returns how many points were deleted."""
        self._next_prune = time.monotonic() + PRUNE_EVERY_S
        now = now_ns if now_ns is not None else time.time_ns()
        with self._lock:
            try:
                db = self._conn()
                if self._downsample_s is not None:
                    tsrollup.roll_up(db, now)
                if self._retention_s is None:
                    return 0
                keep = tsrollup.rollup_measurements(self._downsample_s) if self._downsample_s else []
                marks = ",".join("?" * len(keep)) or "''"
                sql = f"DELETE FROM points WHERE ts_ns < ? AND measurement NOT IN ({marks})"
                return int(db.execute(sql, (now - self._retention_s * 10**9, *keep)).rowcount)
            except sqlite3.Error as e:
                raise StoreUnavailable(f"{self!r}: {e}") from None

    def downsampling(self) -> DownsampleInfo:
        every = self._downsample_s
        targets = tuple(tsrollup.rollup_measurements(every)) if every else ()
        return DownsampleInfo(every, targets, f"embedded store {self.path.name} (rolled up every {PRUNE_EVERY_S:g}s)")

    def set_downsampling(self, every_s: int | None) -> DownsampleInfo:
        with self._lock:
            db = self._conn()
            current, watermark = tsrollup.get_config(db)
            tsrollup.set_config(db, every_s, watermark if current == every_s else 0)
            self._downsample_s = every_s
        self.prune()
        return self.downsampling()

    def _select(self, sql: str, params: Sequence[Any]) -> list[Any]:
        with self._lock:
            try:
                return self._conn().execute(sql, params).fetchall()
            except sqlite3.Error as e:
                raise StoreUnavailable(f"{self!r}: {e}") from None

    def query(self, q: SeriesQuery) -> list[Row]:
        until = check_query(q)
        devices = q.devices
        where = (
            f"p.measurement = ? AND p.device_id IN ({', '.join('?' * len(devices))}) AND p.ts_ns >= ? AND p.ts_ns < ?"
        )
        params: list[Any] = [q.measurement, *devices, q.since_ns, until]
        if q.every_s is None:
            if q.field is not None:
                where += " AND EXISTS (SELECT 1 FROM json_each(p.fields) WHERE key = ?)"
                params.append(q.field)
            sql = f"SELECT p.ts_ns, p.fields FROM points p WHERE {where} ORDER BY p.ts_ns DESC, p.series DESC LIMIT ?"
            params.append(q.limit)
            rows: list[Row] = []
            for ts, text in reversed(self._select(sql, params)):
                fields = json.loads(text)
                if q.field is not None:
                    fields = {q.field: fields[q.field]}
                rows.append(Row(ts, {k: as_value(v) for k, v in fields.items()}))
            return rows
        every = q.every_s * 10**9
        if q.field is not None:
            where += " AND j.key = ?"
            params.append(q.field)
        if q.agg in NUMERIC_AGGS:
            where += " AND j.type IN ('real', 'integer')"
        expr = "j.value" if q.agg == "last" else _SQL_AGG[q.agg]  # type: ignore[index]
        pick = ", max(p.ts_ns)" if q.agg == "last" else ""
        sql = (
            f"SELECT (p.ts_ns / {every}) * {every} AS b, j.key, {expr}, j.type{pick} "
            f"FROM points p, json_each(p.fields) j WHERE {where} GROUP BY b, j.key"
        )
        buckets: dict[int, dict[str, Any]] = {}
        for b, key, value, jtype, *_ in self._select(sql, params):
            if q.agg == "count":
                buckets.setdefault(b, {})[key] = int(value)
            else:
                buckets.setdefault(b, {})[key] = _value(value, jtype)
        return [Row(b, buckets[b]) for b in sorted(buckets)[-q.limit :]]

    def latest(self, measurement: str, device_id: str) -> dict[str, tuple[int, Any]]:
        sql = (
            "SELECT j.key, max(p.ts_ns), j.value, j.type FROM points p, json_each(p.fields) j "
            "WHERE p.measurement = ? AND p.device_id = ? GROUP BY j.key"
        )
        return {k: (ts, _value(v, t)) for k, ts, v, t in self._select(sql, (measurement, device_id))}

    def count(self, measurement: str, device_id: str | None = None) -> int:
        sql = "SELECT count(*) FROM points p, json_each(p.fields) WHERE p.measurement = ?"
        params: list[Any] = [measurement]
        if device_id is not None:
            sql += " AND p.device_id = ?"
            params.append(device_id)
        return int(self._select(sql, params)[0][0])
