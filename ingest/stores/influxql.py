"""InfluxQL reads over the 1.x-compatible ``/query`` endpoint: one query path for InfluxDB 1.x,
2.x (virtual DBRP mapping: database = bucket name) and 3.x (database name).

Pure statement builders (every identifier and string quoted, tags qualified ``::tag`` and fields
``::field`` so a tag and a field of the same name cannot be confused) and :class:`InfluxQLReader`,
which runs them through a ``run(statement) -> result`` callable supplied by the adapter (its HTTP
client, auth and error mapping). No ``GROUP BY`` tag: InfluxQL merges every series of a device
(e.g. after its ``site`` tag changed) before aggregating, so a window has one value per device.
One statement per request (InfluxDB 3 takes no multi-statement queries).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from core.stores import Row, SeriesQuery
from ingest.stores.fieldindex import MEASUREMENT as INDEX
from ingest.stores.tsquery import NUMERIC_AGGS, as_value, check_query

Result = dict[str, Any]
RunFn = Callable[[str], Result]


def quote_ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def device_is(device_id: str) -> str:
    return f"{quote_ident('device_id')}::tag = {quote_string(device_id)}"


def devices_are(devices: tuple[str, ...]) -> str:
    """The condition for any of ``devices`` (one merged series)."""
    if len(devices) == 1:
        return device_is(devices[0])
    return "(" + " OR ".join(device_is(d) for d in devices) + ")"


def raw_statement(q: SeriesQuery, now_ns: int | None = None) -> str:
    until = check_query(q, now_ns)
    where = f"{devices_are(q.devices)} AND time >= {q.since_ns} AND time < {until}"
    sel = f"{quote_ident(q.field)}::field" if q.field else "*::field"
    return f"SELECT {sel} FROM {quote_ident(q.measurement)} WHERE {where} ORDER BY time DESC LIMIT {q.limit}"


def aggregate_statement(q: SeriesQuery, fields: list[str], now_ns: int | None = None) -> str:
    """``q.agg`` of each of ``fields`` per ``q.every_s`` window (windows start at multiples of it)."""
    until = check_query(q, now_ns)
    where = f"{devices_are(q.devices)} AND time >= {q.since_ns} AND time < {until}"
    sel = ", ".join(f"{q.agg}({quote_ident(f)}::field) AS {quote_ident(f)}" for f in fields)
    return (
        f"SELECT {sel} FROM {quote_ident(q.measurement)} WHERE {where} GROUP BY time({q.every_s}s) fill(none) "
        f"ORDER BY time DESC LIMIT {q.limit}"
    )


def last_statement(measurement: str, field: str, device_id: str) -> str:
    return f"SELECT last({quote_ident(field)}::field) FROM {quote_ident(measurement)} WHERE {device_is(device_id)}"


def count_statement(measurement: str, device_id: str | None) -> str:
    stmt = f"SELECT count(*) FROM {quote_ident(measurement)}"
    return stmt + (f" WHERE {device_is(device_id)}" if device_id is not None else "")


def device_fields_statement(measurement: str, device_id: str) -> str:
    """The field keys (and types) ``device_id`` wrote to ``measurement``, from the field index
    (:mod:`ingest.stores.fieldindex`): one query over the device's own index series."""
    return (
        f"SELECT last({quote_ident('seen')}) FROM {quote_ident(INDEX)} WHERE {device_is(device_id)} "
        f"AND {quote_ident('measurement')}::tag = {quote_string(measurement)} GROUP BY {quote_ident('field')}, "
        f"{quote_ident('type')}"
    )


def field_keys_statement(measurement: str) -> str:
    return f"SHOW FIELD KEYS FROM {quote_ident(measurement)}"


def first_result(body: bytes) -> tuple[Result | None, str | None]:
    """The first statement's result of a ``/query`` answer, or the error it carries."""
    try:
        results = json.loads(body).get("results") or [{}]
    except (ValueError, AttributeError):
        return None, f"not a /query answer: {body[:200].decode(errors='replace')}"
    first: Result = results[0]
    if "error" in first:
        return None, str(first["error"])
    return first, None


def rows(result: Result, raw: bool = False) -> list[tuple[int, dict[str, Any]]]:
    """(time ns, {column: value}) of every row of every series, nulls left out."""
    conv: Callable[[Any], Any] = _same if raw else as_value
    out = []
    for s in result.get("series", []):
        cols = s["columns"]
        for values in s["values"]:
            vals = {c: conv(v) for c, v in zip(cols[1:], values[1:], strict=True) if v is not None}
            out.append((int(values[0]), vals))
    return out


def _same(v: Any) -> Any:
    return v


class InfluxQLReader:
    """The read half of :class:`ingest.stores.TimeSeriesStore` over InfluxQL. ``run`` executes one
    statement against the store's database and returns its result (raising our exceptions)."""

    def __init__(self, run: RunFn) -> None:
        self._run = run

    def query(self, q: SeriesQuery) -> list[Row]:
        if q.every_s is None:
            stmt = raw_statement(q)
        else:
            check_query(q)
            fields = self.field_types(q.measurement)
            if q.field is not None:
                fields = {k: v for k, v in fields.items() if k == q.field}
            if q.agg in NUMERIC_AGGS:
                fields = {k: v for k, v in fields.items() if v in ("float", "integer")}
            if not fields:
                return []
            stmt = aggregate_statement(q, sorted(fields))
        found = [Row(ts, vals) for ts, vals in rows(self._run(stmt), raw=q.agg == "count") if vals]
        found.reverse()
        return found

    def latest(self, measurement: str, device_id: str) -> dict[str, tuple[int, Any]]:
        out: dict[str, tuple[int, Any]] = {}
        for f in sorted(self.device_fields(measurement, device_id)):
            for ts, vals in rows(self._run(last_statement(measurement, f, device_id))):
                if "last" in vals:
                    out[f] = (ts, vals["last"])
        return out

    def count(self, measurement: str, device_id: str | None = None) -> int:
        found = rows(self._run(count_statement(measurement, device_id)), raw=True)
        return int(sum(v for _, vals in found for v in vals.values()))

    def device_fields(self, measurement: str, device_id: str) -> dict[str, str]:
        """What ``device_id`` wrote to ``measurement``: cost independent of other devices' keys."""
        result = self._run(device_fields_statement(measurement, device_id))
        return {s["tags"]["field"]: s["tags"]["type"] for s in result.get("series", [])}

    def field_types(self, measurement: str) -> dict[str, str]:
        result = self._run(field_keys_statement(measurement))
        return {r[0]: r[1] for s in result.get("series", []) for r in s["values"]}
