"""A one-line trend per field for `iot devices show`: the hour before the device's latest reading."""

from __future__ import annotations

from typing import Any

from core.stores import SeriesQuery, TimeSeriesStore
from ingest.stores import open_timeseries
from iot.present.chart import sparkline

WINDOW_S = 3600
BUCKETS = 24


def field_sparklines(store: TimeSeriesStore, measurement: str, device_id: str, latest_ns: int) -> dict[str, str]:
    """``{field: "▁▃▅█"}`` from bucket means over the hour up to ``latest_ns`` (numeric fields)."""
    every = WINDOW_S // BUCKETS
    q = SeriesQuery(measurement, device_id, latest_ns - WINDOW_S * 10**9, latest_ns + 1, every_s=every,
                    agg="mean", limit=BUCKETS + 2)  # fmt: skip
    series: dict[str, list[float]] = {}
    for row in store.query(q):
        for f, v in row.values.items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                series.setdefault(f, []).append(float(v))
    return {f: sparkline(vs, BUCKETS) for f, vs in series.items() if len(vs) > 1}


def device_sparklines(settings: Any, device_id: str) -> dict[str, dict[str, str]]:
    """Per measurement kind (telemetry, metrics): field → sparkline. Empty when the store is down."""
    out: dict[str, dict[str, str]] = {}
    try:
        token = settings.influxdb_token.get_secret_value() if settings.influxdb_token else None
        ts = open_timeseries(settings.timeseries_url, data_dir=settings.data_dir, token=token)
        ts.connect()
        try:
            for key, measurement in (("telemetry", "sensor_readings"), ("metrics", "device_metrics")):
                latest = ts.latest(measurement, device_id)
                if latest:
                    out[key] = field_sparklines(ts, measurement, device_id, max(t for t, _ in latest.values()))
        finally:
            ts.close()
    except Exception:  # a trend is a nicety: `show` already warns about an unreachable store
        return {}
    return out
