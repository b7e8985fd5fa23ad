"""Stream a long time range out of any time-series store in bounded pages, oldest first. Pure
over the store's ``query`` (no backend-specific code): memory holds one page, never the range.

The range is walked in half-open windows ``[a, b)``. A window that comes back full (``page``
rows) may have been cut, so it is halved and asked again; a sparse one doubles the next window.
For aggregated queries the window edges fall on bucket boundaries (epoch-aligned, like every
backend's GROUP BY time), so each bucket is computed whole, in exactly one window.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace

from core.stores import Row, SeriesQuery, TimeSeriesStore
from core.timefmt import iso_ns
from ingest.stores.tsquery import FUTURE_SLACK_NS

HOUR_NS = 3600 * 10**9


def stream_rows(
    query: Callable[[SeriesQuery], list[Row]],
    q: SeriesQuery,
    *,
    page: int = 5000,
    first_window_ns: int = HOUR_NS,
    now_ns: int | None = None,
) -> Iterator[Row]:
    """Every row of ``q`` between ``since_ns`` and ``until_ns`` (default: now plus the future
    slack), oldest first, ``q.limit`` ignored, at most ``page`` rows per store query."""
    until = q.until_ns if q.until_ns is not None else (now_ns or time.time_ns()) + FUTURE_SLACK_NS
    step = q.every_s * 10**9 if q.every_s else 1
    window = max(step, first_window_ns - first_window_ns % step)
    a = q.since_ns

    def edge(t: int) -> int:  # the next bucket edge at or after t, within the range
        return min(until, -(-t // step) * step)

    while a < until:
        b = edge(a + window)
        rows = query(replace(q, since_ns=a, until_ns=b, limit=page))
        if len(rows) >= page:  # maybe cut: ask again for a smaller window, if there is one
            half = max(step, (b - a) // 2)
            if edge(a + half) < b:
                window = half
                continue
        yield from rows
        a = b
        if len(rows) < page // 4:
            window *= 2


def series_records(rows: Iterator[Row]) -> Iterator[dict[str, object]]:
    """Rows as output records: ``time`` (ISO-8601 UTC), ``ts_ns``, then one key per field."""
    for r in rows:
        yield {"time": iso_ns(r.ts_ns), "ts_ns": r.ts_ns, **r.values}


def series_columns(store: TimeSeriesStore, q: SeriesQuery) -> list[str]:
    """CSV header: time, ts_ns and every field the devices have in this measurement (known before
    the first row, so the header is right for the whole stream)."""
    if q.field is not None:
        return ["time", "ts_ns", q.field]
    fields = {f for device in q.devices for f in store.latest(q.measurement, device)}
    return ["time", "ts_ns", *sorted(fields)]
