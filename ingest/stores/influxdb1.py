"""InfluxDB 1.x over its HTTP API (``/write``, ``/query``).

URL: ``influxdb1://[user[:pass]@]host:8086/DBNAME[?ssl=true]``; the password may instead come
from the ``password`` option (Settings: ``IOT_INFLUXDB_PASSWORD``, ``.env`` or
``IOT_SECRETS_DIR``). ``connect()`` creates the database if it is missing (``CREATE DATABASE``
is a no-op when it exists); without admin rights it only checks that the database exists.
Reads go through the InfluxQL path shared with 2.x/3.x (:mod:`ingest.stores.influxql`: every
condition on a tag qualified ``::tag``, so a field of the same name never matches); HTTP statuses
are mapped in :mod:`ingest.stores.influxhttp`. Each write also records new (device, field) pairs
in a small index measurement (:mod:`ingest.stores.fieldindex`), so ``latest()`` reads only the
device's own fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import urllib3

from core.model import Point
from core.stores import Row, SeriesQuery, StoreConfigError, StoreNeedsOperator, StoreUnavailable
from ingest.stores.fieldindex import FieldIndex, write_indexed
from ingest.stores.influxhttp import DATA_ERRORS, TOO_LARGE, InfluxHTTP, error_text
from ingest.stores.influxql import InfluxQLReader, Result, first_result, quote_ident, quote_string
from ingest.stores.partial_writes import Encoded, SendResult, send_halves
from ingest.stores.retention import DownsampleInfo, RetentionInfo, parse_go_duration, shard_duration_s

__all__ = ["InfluxDB1Store", "quote_ident", "quote_string"]


ROLLUP_RP = "iot_rollup"
CQ_PREFIX = "iot_downsample_"
ROLLUP_SOURCES = ("sensor_readings", "device_metrics")


def rollup_select(db: str, source_rp: str, every_s: int, where: str = "") -> str:
    """The downsampling SELECT: means of every field per bucket, per series, into the rollup RP
    (fields become ``mean_<field>``, as InfluxDB names them)."""
    sources = ", ".join(f"{quote_ident(db)}.{quote_ident(source_rp)}.{quote_ident(m)}" for m in ROLLUP_SOURCES)
    return (
        f"SELECT mean(*) INTO {quote_ident(db)}.{quote_ident(ROLLUP_RP)}.:MEASUREMENT FROM {sources}"
        f"{' WHERE ' + where if where else ''} GROUP BY time({every_s}s), *"
    )


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
        headers: dict[str, str] = {}
        if user:
            headers.update(urllib3.make_headers(basic_auth=f"{user}:{password or ''}"))
        self._http = InfluxHTTP(host, port, ssl=ssl, headers=headers, timeout=timeout, what=repr(self))
        self._reader = InfluxQLReader(self._select)
        self._index = FieldIndex()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        token: str | None = None,
        password: str | None = None,
        data_dir: Path | None = None,
        **_: object,
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
        user = unquote(u.username) if u.username else None
        return cls(u.hostname, port, db, ssl=ssl, user=user, password=unquote(u.password) if u.password else password)

    def __repr__(self) -> str:
        scheme = "https" if self.ssl else "http"
        return f"InfluxDB1Store({scheme}://{self.host}:{self.port}/{self.db})"

    # -- lifecycle ---------------------------------------------------------------------------

    def connect(self) -> None:
        self._http.open()
        create = f"CREATE DATABASE {quote_ident(self.db)}"
        r = self._http.request("POST", "/query", fields={"q": create}, allow=(401, 403))
        if r.status == 200:
            return
        if r.status in (401, 403):
            if self.db not in self._databases():
                raise StoreNeedsOperator(
                    f"database {self.db!r} does not exist on {self!r} and this user may not create it"
                )
            return
        raise StoreUnavailable(f"{self!r}: CREATE DATABASE answered {r.status}: {error_text(r.body)}")

    def close(self) -> None:
        self._http.close()

    # -- writes ------------------------------------------------------------------------------

    def prepare(self, points: Sequence[Point]) -> Encoded:
        """The line protocol for ``points``, made ahead of :meth:`write` (any thread; pure)."""
        return Encoded.of(points)

    def write(self, points: Sequence[Point], encoded: Encoded | None = None) -> list[tuple[Point, str]]:
        return write_indexed(points, self._send, self._index, repr(self), encoded)

    def _send(self, lines: Sequence[str]) -> SendResult:
        path = "/write?" + urlencode({"db": self.db, "precision": "ns"})
        r = self._http.request("POST", path, body="\n".join(lines).encode())
        if r.status in DATA_ERRORS:
            return error_text(r.body)
        if r.status == TOO_LARGE:
            return send_halves(lines, self._send, f"point too large for {self!r} (413)")
        return None

    # -- queries -----------------------------------------------------------------------------

    def query(self, q: SeriesQuery) -> list[Row]:
        return self._reader.query(q)

    def latest(self, measurement: str, device_id: str) -> dict[str, tuple[int, Any]]:
        return self._reader.latest(measurement, device_id)

    def count(self, measurement: str, device_id: str | None = None) -> int:
        return self._reader.count(measurement, device_id)

    # -- retention (see ingest.stores.retention) ----------------------------------------------------

    def _default_policy(self) -> tuple[str, str]:
        result = self._select(f"SHOW RETENTION POLICIES ON {quote_ident(self.db)}", db=None)
        for s in result.get("series", []):
            cols = s["columns"]
            for values in s["values"]:
                row = dict(zip(cols, values, strict=True))
                if row.get("default"):
                    return str(row["name"]), str(row["duration"])
        raise StoreUnavailable(f"{self!r}: database {self.db!r} has no default retention policy")

    def retention(self) -> RetentionInfo:
        name, duration = self._default_policy()
        return RetentionInfo(parse_go_duration(duration), f"retention policy {name!r} on database {self.db!r}")

    def set_retention(self, seconds: int | None) -> RetentionInfo:
        name, _ = self._default_policy()
        dur = "INF" if seconds is None else f"{seconds}s"
        self._select(
            f"ALTER RETENTION POLICY {quote_ident(name)} ON {quote_ident(self.db)} "
            f"DURATION {dur} SHARD DURATION {shard_duration_s(seconds)}s DEFAULT",
            db=None,
        )
        return self.retention()

    def _downsample_cqs(self) -> list[str]:
        names: list[str] = []
        for s in self._select("SHOW CONTINUOUS QUERIES", db=None).get("series", []):
            if s.get("name") == self.db:
                names += [v[0] for v in s.get("values", []) if str(v[0]).startswith(CQ_PREFIX)]
        return names

    def downsampling(self) -> DownsampleInfo:
        cqs = self._downsample_cqs()
        every = int(cqs[0][len(CQ_PREFIX) : -1]) if cqs else None
        targets = tuple(f"{ROLLUP_RP}.{m}" for m in ROLLUP_SOURCES) if every else ()
        return DownsampleInfo(every, targets, f"continuous query on database {self.db!r}")

    def set_downsampling(self, every_s: int | None) -> DownsampleInfo:
        for name in self._downsample_cqs():
            self._select(f"DROP CONTINUOUS QUERY {quote_ident(name)} ON {quote_ident(self.db)}", db=None)
        if every_s is not None:
            source, _ = self._default_policy()
            if source == ROLLUP_RP:
                raise StoreConfigError(f"the default retention policy of {self.db!r} is {ROLLUP_RP!r}: choose another")
            self._select(
                f"CREATE RETENTION POLICY {quote_ident(ROLLUP_RP)} ON {quote_ident(self.db)} "
                "DURATION INF REPLICATION 1",
                db=None,
            )
            name = quote_ident(f"{CQ_PREFIX}{every_s}s")
            self._select(
                f"CREATE CONTINUOUS QUERY {name} ON {quote_ident(self.db)} BEGIN "
                f"{rollup_select(self.db, source, every_s)} END",
                db=None,
            )
        return self.downsampling()

    def _select(self, statement: str, db: str | None = "") -> Result:
        fields = {"q": statement, "epoch": "ns"}
        if db is not None:
            fields["db"] = db or self.db
        r = self._http.request("POST", "/query", fields=fields, allow=DATA_ERRORS)
        result, error = first_result(r.body)
        if result is None:
            raise StoreUnavailable(f"{self!r}: query failed ({r.status}): {error}")
        return result

    def _databases(self) -> set[str]:
        result = self._select("SHOW DATABASES", db=None)
        return {v[0] for s in result.get("series", []) for v in s["values"]}
