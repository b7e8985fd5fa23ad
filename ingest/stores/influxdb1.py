"""InfluxDB 1.x over its HTTP API (``/write``, ``/query``) with urllib3.

URL: ``influxdb1://[user[:pass]@]host:8086/DBNAME[?ssl=true]``; the password may instead come
from ``IOT_INFLUXDB_PASSWORD``. ``connect()`` creates the database if it is missing
(``CREATE DATABASE`` is a no-op when it exists); without admin rights it only checks that the
database exists. Queries are InfluxQL with every identifier and string quoted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import urllib3

from core.model import Point
from core.stores import Row, SeriesQuery, StoreConfigError, StoreUnavailable
from ingest.stores.bisect import write_points
from ingest.stores.tsquery import NUMERIC_AGGS, as_value, check_query


def quote_ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class InfluxDB1Store:
    """Time series in an InfluxDB 1.x database. See :class:`ingest.stores.TimeSeriesStore`."""

    def __init__(
        self,
        host: str,
        port: int,
        db: str,
        *,
        ssl: bool = False,
        user: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.host, self.port, self.db, self.ssl = host, port, db, ssl
        self._headers: dict[str, str] = {}
        if user:
            self._headers.update(urllib3.make_headers(basic_auth=f"{user}:{password or ''}"))
        self._timeout = urllib3.Timeout(connect=min(5.0, timeout), read=timeout)
        self._pool: urllib3.HTTPConnectionPool | None = None

    @classmethod
    def from_url(
        cls, url: str, *, token: str | None = None, data_dir: Path | None = None, **_: object
    ) -> InfluxDB1Store:
        u = urlsplit(url)
        db = unquote(u.path.strip("/"))
        if not u.hostname or not db or "/" in db:
            raise StoreConfigError("influxdb1 URL must look like influxdb1://[user:pass@]host:8086/DBNAME")
        try:
            port = u.port or 8086
        except ValueError as e:
            raise StoreConfigError(f"influxdb1 URL: {e}") from None
        ssl = parse_qs(u.query).get("ssl", ["false"])[-1].lower() in ("1", "true", "yes")
        password = unquote(u.password) if u.password else os.environ.get("IOT_INFLUXDB_PASSWORD")
        user = unquote(u.username) if u.username else None
        return cls(u.hostname, port, db, ssl=ssl, user=user, password=password)

    def __repr__(self) -> str:
        scheme = "https" if self.ssl else "http"
        return f"InfluxDB1Store({scheme}://{self.host}:{self.port}/{self.db})"

    # -- lifecycle ---------------------------------------------------------------------------

    def connect(self) -> None:
        cls = urllib3.HTTPSConnectionPool if self.ssl else urllib3.HTTPConnectionPool
        self._pool = cls(self.host, self.port, maxsize=4, block=False, timeout=self._timeout, retries=False)
        status, body = self._request("POST", "/query", fields={"q": f"CREATE DATABASE {quote_ident(self.db)}"})
        if status == 200:
            return
        if status in (401, 403):
            names = self._databases()
            if self.db not in names:
                raise StoreConfigError(
                    f"database {self.db!r} does not exist on {self!r} and this user may not create it"
                )
            return
        raise StoreUnavailable(f"{self!r}: CREATE DATABASE answered {status}: {_error(body)}")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    # -- writes ------------------------------------------------------------------------------

    def write(self, points: Sequence[Point]) -> list[tuple[Point, str]]:
        return write_points(points, self._send)

    def _send(self, lines: Sequence[str]) -> str | None:
        body = "\n".join(lines).encode()
        path = "/write?" + urlencode({"db": self.db, "precision": "ns"})
        status, resp = self._request("POST", path, body=body)
        if status == 204:
            return None
        if status == 400:
            return _error(resp)
        raise StoreUnavailable(f"{self!r}: write answered {status}: {_error(resp)}")

    # -- queries -----------------------------------------------------------------------------

    def query(self, q: SeriesQuery) -> list[Row]:
        until = check_query(q)
        where = f"{quote_ident('device_id')} = {quote_string(q.device_id)} AND time >= {q.since_ns} AND time < {until}"
        m = quote_ident(q.measurement)
        if q.every_s is None:
            sel = f"{quote_ident(q.field)}::field" if q.field else "*::field"
            stmt = f"SELECT {sel} FROM {m} WHERE {where} ORDER BY time DESC LIMIT {q.limit}"
        else:
            assert q.agg is not None
            fields = self._field_types(q.measurement)
            if q.field is not None:
                fields = {k: v for k, v in fields.items() if k == q.field}
            if q.agg in NUMERIC_AGGS:
                fields = {k: v for k, v in fields.items() if v in ("float", "integer")}
            if not fields:
                return []
            sel = ", ".join(f"{q.agg}({quote_ident(f)}) AS {quote_ident(f)}" for f in sorted(fields))
            stmt = (
                f"SELECT {sel} FROM {m} WHERE {where} GROUP BY time({q.every_s}s) fill(none) "
                f"ORDER BY time DESC LIMIT {q.limit}"
            )
        raw = q.agg == "count"
        rows = [Row(ts, vals) for ts, vals in self._rows(self._query(stmt)[0], raw) if vals]
        rows.reverse()
        return rows

    def latest(self, measurement: str, device_id: str) -> dict[str, tuple[int, Any]]:
        fields = sorted(self._field_types(measurement))
        if not fields:
            return {}
        m = quote_ident(measurement)
        dev = f"{quote_ident('device_id')} = {quote_string(device_id)}"
        stmts = "; ".join(f"SELECT last({quote_ident(f)}) FROM {m} WHERE {dev}" for f in fields)
        out: dict[str, tuple[int, Any]] = {}
        for f, result in zip(fields, self._query(stmts), strict=True):
            for ts, vals in self._rows(result):
                if "last" in vals:
                    out[f] = (ts, vals["last"])
        return out

    def count(self, measurement: str, device_id: str | None = None) -> int:
        stmt = f"SELECT count(*) FROM {quote_ident(measurement)}"
        if device_id is not None:
            stmt += f" WHERE {quote_ident('device_id')} = {quote_string(device_id)}"
        return int(sum(v for _, vals in self._rows(self._query(stmt)[0]) for v in vals.values()))

    def _field_types(self, measurement: str) -> dict[str, str]:
        result = self._query(f"SHOW FIELD KEYS FROM {quote_ident(measurement)}")[0]
        return {s_row[0]: s_row[1] for s in result.get("series", []) for s_row in s["values"]}

    def _databases(self) -> set[str]:
        result = self._query("SHOW DATABASES", db=None)[0]
        return {v[0] for s in result.get("series", []) for v in s["values"]}

    @staticmethod
    def _rows(result: dict[str, Any], raw: bool = False) -> list[tuple[int, dict[str, Any]]]:
        conv: Callable[[Any], Any] = (lambda v: v) if raw else as_value
        out = []
        for s in result.get("series", []):
            cols = s["columns"]
            for values in s["values"]:
                vals = {c: conv(v) for c, v in zip(cols[1:], values[1:], strict=True) if v is not None}
                out.append((int(values[0]), vals))
        return out

    def _query(self, q: str, db: str | None = "") -> list[dict[str, Any]]:
        fields = {"q": q, "epoch": "ns"}
        if db is not None:
            fields["db"] = db or self.db
        status, body = self._request("POST", "/query", fields=fields)
        if status != 200:
            raise StoreUnavailable(f"{self!r}: query answered {status}: {_error(body)}")
        results: list[dict[str, Any]] = json.loads(body)["results"]
        for r in results:
            if "error" in r:
                raise StoreUnavailable(f"{self!r}: query failed: {r['error']}")
        return results

    def _request(
        self, method: str, path: str, *, body: bytes | None = None, fields: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        if self._pool is None:
            raise StoreUnavailable(f"{self!r} is not connected")
        try:
            if fields is not None:
                r = self._pool.request(method, path, fields=fields, encode_multipart=False, headers=self._headers)
            else:
                r = self._pool.urlopen(method, path, body=body, headers=self._headers)
        except urllib3.exceptions.HTTPError as e:
            raise StoreUnavailable(f"{self!r} unreachable: {type(e).__name__}") from None
        if r.status >= 500:
            raise StoreUnavailable(f"{self!r} answered {r.status}: {_error(r.data)}")
        return r.status, r.data


def _error(body: bytes) -> str:
    try:
        return str(json.loads(body).get("error", "")) or body.decode(errors="replace")[:300]
    except (ValueError, AttributeError):
        return body.decode(errors="replace")[:300]
