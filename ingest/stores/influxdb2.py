"""InfluxDB 2.x/3.x through influxdb-client: line protocol writes, Flux queries.

URL: ``influxdb://host:8086?org=ORG&bucket=BUCKET`` (``influxdbs://`` or ``?ssl=true`` for
https); the token comes from the ``token`` option (``IOT_INFLUXDB_TOKEN``). Writes are one
synchronous request per batch; a 400/422 (partial write, field type conflict) is bisected to
the refused points like the 1.x store. The Flux text is built by pure functions below.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import urllib3

from core.model import Point
from core.stores import Row, SeriesQuery, StoreConfigError, StoreUnavailable
from ingest.stores.bisect import write_points
from ingest.stores.tsquery import NUMERIC_AGGS, check_query

_SKIP = frozenset({"result", "table", "_start", "_stop", "_measurement", "_time"})


def flux_string(value: str) -> str:
    """A Flux string literal (quotes, backslashes and ``${`` interpolation escaped)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${") + '"'


def _source(bucket: str, measurement: str, device_id: str, start: int, stop: int) -> str:
    return (
        f"from(bucket: {flux_string(bucket)})\n"
        f"  |> range(start: time(v: {start}), stop: time(v: {stop}))\n"
        f"  |> filter(fn: (r) => r._measurement == {flux_string(measurement)} and "
        f"r.device_id == {flux_string(device_id)})\n"
    )


def series_flux(bucket: str, q: SeriesQuery, now_ns: int | None = None) -> str:
    """Rows for ``q``: newest ``limit`` rows (or buckets), one column per field."""
    stop = check_query(q, now_ns)
    head = 'import "types"\n' if q.agg in NUMERIC_AGGS else ""
    text = head + _source(bucket, q.measurement, q.device_id, q.since_ns, stop)
    if q.field is not None:
        text += f"  |> filter(fn: (r) => r._field == {flux_string(q.field)})\n"
    if q.every_s is not None:
        if q.agg in NUMERIC_AGGS:
            text += (
                '  |> filter(fn: (r) => types.isType(v: r._value, type: "float") or '
                'types.isType(v: r._value, type: "int"))\n'
            )
        text += f'  |> aggregateWindow(every: {q.every_s}s, fn: {q.agg}, createEmpty: false, timeSrc: "_start")\n'
    return text + (
        "  |> drop(fn: (column) => column !~ /^_/)\n"
        '  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")\n'
        "  |> group()\n"
        '  |> sort(columns: ["_time"], desc: true)\n'
        f"  |> limit(n: {q.limit})\n"
    )


def latest_flux(bucket: str, measurement: str, device_id: str) -> str:
    return _source(bucket, measurement, device_id, 0, 2**63 - 1) + "  |> last()\n"


def count_flux(bucket: str, measurement: str, device_id: str | None) -> str:
    text = (
        f"from(bucket: {flux_string(bucket)})\n"
        f"  |> range(start: time(v: 0), stop: time(v: {2**63 - 1}))\n"
        f"  |> filter(fn: (r) => r._measurement == {flux_string(measurement)}"
    )
    if device_id is not None:
        text += f" and r.device_id == {flux_string(device_id)}"
    return text + ")\n  |> count()\n  |> group()\n  |> sum()\n"


class InfluxDB2Store:
    """Time series in an InfluxDB 2.x/3.x bucket. See :class:`ingest.stores.TimeSeriesStore`."""

    def __init__(self, url: str, org: str, bucket: str, token: str | None, timeout_ms: int = 30_000) -> None:
        self.url, self.org, self.bucket = url, org, bucket
        self._token = token
        self._timeout_ms = timeout_ms
        self._client: Any = None
        self._write: Any = None

    @classmethod
    def from_url(
        cls, url: str, *, token: str | None = None, data_dir: Path | None = None, **_: object
    ) -> InfluxDB2Store:
        u = urlsplit(url)
        params = {k: v[-1] for k, v in parse_qs(u.query).items()}
        org, bucket = params.get("org"), params.get("bucket")
        if not u.hostname or not org or not bucket:
            raise StoreConfigError("influxdb URL must look like influxdb://host:8086?org=ORG&bucket=BUCKET")
        ssl = u.scheme == "influxdbs" or params.get("ssl", "").lower() in ("1", "true", "yes")
        try:
            port = u.port or 8086
        except ValueError as e:
            raise StoreConfigError(f"influxdb URL: {e}") from None
        return cls(f"{'https' if ssl else 'http'}://{u.hostname}:{port}", org, bucket, token)

    def __repr__(self) -> str:
        return f"InfluxDB2Store({self.url}, org={self.org}, bucket={self.bucket})"

    def connect(self) -> None:
        from influxdb_client.client.influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        auth: dict[str, Any] = {"token": self._token} if self._token else {}
        self._client = InfluxDBClient(url=self.url, org=self.org, timeout=self._timeout_ms, **auth)
        try:
            ok = self._client.ping()
        except Exception as e:  # the client raises urllib3 and its own errors alike
            raise StoreUnavailable(f"{self!r} unreachable: {type(e).__name__}") from None
        if not ok:
            raise StoreUnavailable(f"{self!r} did not answer /ping")
        self._write = self._client.write_api(write_options=SYNCHRONOUS)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = self._write = None

    def write(self, points: Sequence[Point]) -> list[tuple[Point, str]]:
        return write_points(points, self._send)

    def _send(self, lines: Sequence[str]) -> str | None:
        from influxdb_client.rest import ApiException

        if self._write is None:
            raise StoreUnavailable(f"{self!r} is not connected")
        try:
            self._write.write(bucket=self.bucket, org=self.org, record="\n".join(lines), write_precision="ns")
        except ApiException as e:
            if e.status in (400, 422):
                return _api_error(e)
            raise StoreUnavailable(f"{self!r}: write answered {e.status}: {_api_error(e)}") from None
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise StoreUnavailable(f"{self!r} unreachable: {type(e).__name__}") from None
        return None

    def _tables(self, flux: str) -> Any:
        from influxdb_client.rest import ApiException

        if self._client is None:
            raise StoreUnavailable(f"{self!r} is not connected")
        try:
            return self._client.query_api().query(flux, org=self.org)
        except ApiException as e:
            raise StoreUnavailable(f"{self!r}: query answered {e.status}: {_api_error(e)}") from None
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise StoreUnavailable(f"{self!r} unreachable: {type(e).__name__}") from None

    def query(self, q: SeriesQuery) -> list[Row]:
        rows = []
        for table in self._tables(series_flux(self.bucket, q)):
            for rec in table.records:
                values = {k: v for k, v in rec.values.items() if k not in _SKIP and v is not None}
                if values:
                    rows.append(Row(_ns(rec.get_time()), values))
        rows.sort(key=lambda r: r.ts_ns)
        return rows

    def latest(self, measurement: str, device_id: str) -> dict[str, tuple[int, Any]]:
        out: dict[str, tuple[int, Any]] = {}
        for table in self._tables(latest_flux(self.bucket, measurement, device_id)):
            for rec in table.records:
                ts, field = _ns(rec.get_time()), rec.get_field()
                if field not in out or out[field][0] < ts:
                    out[field] = (ts, rec.get_value())
        return out

    def count(self, measurement: str, device_id: str | None = None) -> int:
        tables = self._tables(count_flux(self.bucket, measurement, device_id))
        return int(sum(rec.get_value() or 0 for t in tables for rec in t.records))


def _ns(t: datetime) -> int:
    """A client datetime (µs precision) to ns since the epoch."""
    delta = t - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def _api_error(e: Any) -> str:
    import json

    body = e.body
    try:
        return str(json.loads(body).get("message", "")) or str(body)[:300]
    except (TypeError, ValueError, AttributeError):
        return str(body or e.reason)[:300]
