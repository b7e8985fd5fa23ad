"""Downsampling inside the embedded time-series file: per-bucket means of numeric fields.

Each raw measurement ``m`` gets a rollup measurement ``m_<every>`` (e.g. ``sensor_readings_1m``)
with the same series (device and tags), one point per full bucket, fields = the mean of each
numeric field in it. A watermark in ``meta`` marks what is rolled up; only whole buckets behind
``now`` are rolled, so a bucket is written once. Retention pruning leaves rollups alone, so a year
of minute means stays while raw points expire. Runs on the store's connection, inside its lock.
"""

from __future__ import annotations

import json
import sqlite3

from ingest.stores.retention import human

ROLLUP_SOURCES = ("sensor_readings", "device_metrics")


def suffix(every_s: int) -> str:
    return human(every_s)


def rollup_measurements(every_s: int) -> list[str]:
    return [f"{m}_{suffix(every_s)}" for m in ROLLUP_SOURCES]


def get_config(db: sqlite3.Connection) -> tuple[int | None, int]:
    """(every_s or None, watermark_ns)."""
    row = db.execute("SELECT value FROM meta WHERE key = 'downsample'").fetchone()
    if not row:
        return None, 0
    cfg = json.loads(row[0])
    return int(cfg["every_s"]), int(cfg.get("watermark_ns", 0))


def set_config(db: sqlite3.Connection, every_s: int | None, watermark_ns: int = 0) -> None:
    if every_s is None:
        db.execute("DELETE FROM meta WHERE key = 'downsample'")
    else:
        value = json.dumps({"every_s": every_s, "watermark_ns": watermark_ns})
        db.execute("INSERT OR REPLACE INTO meta VALUES ('downsample', ?)", (value,))


def roll_up(db: sqlite3.Connection, now_ns: int) -> int:
    """Roll every whole bucket between the watermark and ``now_ns`` up; returns points written."""
    every_s, lo = get_config(db)
    if every_s is None:
        return 0
    every = every_s * 10**9
    hi = now_ns // every * every - every  # the last bucket that can still get points stays open
    if hi <= lo:
        return 0
    written = 0
    db.execute("BEGIN IMMEDIATE")
    try:
        for m in ROLLUP_SOURCES:
            target = f"{m}_{suffix(every_s)}"
            cur = db.execute(
                """
                INSERT INTO points (measurement, series, device_id, tags, ts_ns, fields)
                SELECT ?, series, device_id, tags, b, json_group_object(key, v) FROM (
                    SELECT p.series, p.device_id, p.tags, (p.ts_ns / ?) * ? AS b, j.key AS key, avg(j.value) AS v
                    FROM points p, json_each(p.fields) j
                    WHERE p.measurement = ? AND p.ts_ns >= ? AND p.ts_ns < ? AND j.type IN ('real', 'integer')
                    GROUP BY p.series, b, j.key
                ) GROUP BY series, b
                ON CONFLICT (measurement, series, ts_ns) DO UPDATE SET fields = json_patch(fields, excluded.fields)
                """,
                (target, every, every, m, lo, hi),
            )
            written += max(0, cur.rowcount)
            db.execute(
                "INSERT OR IGNORE INTO field_types SELECT ?, field, 'float' FROM field_types "
                "WHERE measurement = ? AND type IN ('float', 'integer')",
                (target, m),
            )
        set_config(db, every_s, hi)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return written
