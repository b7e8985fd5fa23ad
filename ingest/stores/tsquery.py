"""Pure helpers shared by the time-series stores: query checks and value normalisation."""

from __future__ import annotations

import time
from typing import Any

from core.stores import AGGREGATES, SeriesQuery

MAX_BUCKETS = 1_000_000
FUTURE_SLACK_NS = 86_400 * 10**9  # aggregated queries without `until` reach one day ahead
NUMERIC_AGGS = ("mean", "min", "max")


def check_query(q: SeriesQuery, now_ns: int | None = None) -> int:
    """Validate ``q`` and return its exclusive upper bound in ns. Raises ValueError."""
    if (q.every_s is None) != (q.agg is None):
        raise ValueError("every and agg go together")
    if not q.devices:
        raise ValueError("no device to query")
    if q.limit < 1:
        raise ValueError("limit must be at least 1")
    until = q.until_ns
    if q.every_s is not None:
        if q.agg not in AGGREGATES:
            raise ValueError(f"unknown aggregate {q.agg!r} (use {', '.join(AGGREGATES)})")
        if q.every_s < 1:
            raise ValueError("every must be at least 1s")
        if until is None:
            until = (now_ns if now_ns is not None else time.time_ns()) + FUTURE_SLACK_NS
        buckets = (until - q.since_ns) // (q.every_s * 10**9)
        if buckets > MAX_BUCKETS:
            raise ValueError(
                f"{buckets} buckets of {q.every_s}s requested (max {MAX_BUCKETS}): "
                "use a larger interval or a shorter range"
            )
    if until is not None and until <= q.since_ns:
        raise ValueError("until must be after since")
    return until if until is not None else 2**63 - 1


def as_value(v: Any) -> Any:
    """JSON numbers come back as int when integral: every stored number is a float."""
    if type(v) is int:
        return float(v)
    return v
