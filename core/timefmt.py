"""UTC times and their ISO-8601 text, one way everywhere (databases hand back naive or aware
datetimes depending on the backend; everything shown or exported is UTC with a ``Z``)."""

from __future__ import annotations

from datetime import UTC, datetime


def utc(dt: datetime | None) -> datetime | None:
    """``dt`` as an aware UTC datetime (a naive one is taken to be UTC, as the registry stores it)."""
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def from_epoch(ts: float) -> datetime:
    """Epoch seconds -> aware UTC datetime."""
    return datetime.fromtimestamp(ts, UTC)


def iso(ts: datetime | float) -> str:
    """``2026-12-03T14:55:31Z``: seconds precision, UTC (epoch seconds or a datetime)."""
    d = from_epoch(ts) if isinstance(ts, int | float) else utc(ts)
    assert d is not None
    return d.isoformat(timespec="seconds").replace("+00:00", "Z")


def iso_ns(ts_ns: int) -> str:
    """ISO-8601 UTC with milliseconds and ``Z`` (``ts_ns`` alongside keeps the exact time)."""
    s, ns = divmod(ts_ns, 10**9)
    t = datetime.fromtimestamp(s, UTC).replace(microsecond=ns // 1000)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")
