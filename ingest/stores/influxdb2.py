"""InfluxDB 2.x and 3.x: line protocol to the v2 write API with ``influxdb-client``, InfluxQL reads
on the v1 ``/query`` API.

URL: ``influxdb://host:8086?org=ORG&bucket=BUCKET`` (``influxdbs://`` or ``?ssl=true`` for
https). InfluxDB 3 (Core/Enterprise, default port 8181): ``bucket`` is the database name and
``org`` may be left out (3.x ignores it). The token comes from the ``token`` option (Settings:
``IOT_INFLUXDB_TOKEN``), sent as ``Authorization: Token``.

Lifecycle: ``connect()`` opens an ``InfluxDBClient`` (no retries of its own) and pings the server;
``close()`` closes it. Writes: one ``POST /api/v2/write`` per batch through the client's synchronous
write API (``precision=ns``). A 400/422 is a partial write: 3.x names the
refused lines (``data[].line_number``) and those are taken as they are; 2.x gives one message and
the batch is bisected to the refused points (:mod:`ingest.stores.partial_writes`). A 413 splits the
batch. Other statuses are mapped in :mod:`ingest.stores.influxhttp` (401/403/404: needs an
operator; 429/5xx: transient, ``Retry-After`` honoured).

Reads: InfluxQL on ``/query`` with ``db`` = bucket (2.x: its virtual DBRP mapping; 3.x: the
database), the same statements as 1.x (:mod:`ingest.stores.influxql`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS, WriteApi
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.service.ping_service import PingService

from core.model import Point
from core.stores import Row, SeriesQuery, StoreConfigError, StoreUnavailable
from ingest.stores.fieldindex import FieldIndex, write_indexed
from ingest.stores.influxhttp import DATA_ERRORS, TOO_LARGE, InfluxHTTP, call_client, error_text
from ingest.stores.influxql import InfluxQLReader, Result, first_result
from ingest.stores.partial_writes import Encoded, LineErrors, SendResult, send_halves
from ingest.stores.retention import RetentionInfo

V3_MAX_LINE_ERRORS = 100  # InfluxDB 3 lists at most this many refused lines


def line_errors(body: bytes) -> SendResult:
    """A 400/422 body: InfluxDB 3's ``{"error", "data": [{"line_number", "error_message"}]}``
    (line numbers from 1) as :class:`LineErrors`, else the server's one message."""
    try:
        doc = json.loads(body)
    except ValueError:
        return error_text(body)
    data = doc.get("data") if isinstance(doc, dict) else None
    if isinstance(data, list) and data:
        errors: dict[int, str] = {}
        for entry in data:
            n = entry.get("line_number") if isinstance(entry, dict) else None
            if not isinstance(n, int) or n < 1:
                return error_text(body)
            errors[n - 1] = str(entry.get("error_message") or doc.get("error") or "refused")[:300]
        return LineErrors(errors, complete=len(data) < V3_MAX_LINE_ERRORS)
    return error_text(body)


class InfluxDB2Store:
    """Time series in an InfluxDB 2.x bucket or 3.x database. See :class:`ingest.stores.TimeSeriesStore`."""

    def __init__(
        self,
        host: str,
        port: int,
        bucket: str,
        *,
        org: str | None = None,
        token: str | None = None,
        ssl: bool = False,
        timeout: float = 30.0,
    ) -> None:
        self.host, self.port, self.org, self.bucket, self.ssl = host, port, org, bucket, ssl
        self._token, self._timeout = token, timeout
        headers = {"Authorization": f"Token {token}"} if token else {}
        self._http = InfluxHTTP(host, port, ssl=ssl, headers=headers, timeout=timeout, what=repr(self))
        self._client: InfluxDBClient | None = None
        self._write_api: WriteApi | None = None
        self._reader = InfluxQLReader(self._select)
        self._index = FieldIndex()

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl else 'http'}://{self.host}:{self.port}"

    @classmethod
    def from_url(
        cls, url: str, *, token: str | None = None, data_dir: Path | None = None, **_: object
    ) -> InfluxDB2Store:
        u = urlsplit(url)
        params = {k: v[-1] for k, v in parse_qs(u.query).items()}
        org, bucket = params.get("org") or None, params.get("bucket")
        if not u.hostname or not bucket:
            raise StoreConfigError("influxdb URL must look like influxdb://host:8086?org=ORG&bucket=BUCKET")
        ssl = u.scheme == "influxdbs" or params.get("ssl", "").lower() in ("1", "true", "yes")
        try:
            port = u.port or 8086
        except ValueError as e:
            raise StoreConfigError(f"influxdb URL: {e}") from None
        return cls(u.hostname, port, bucket, org=org, token=token, ssl=ssl)

    def __repr__(self) -> str:
        return f"InfluxDB2Store({self.url}, org={self.org}, bucket={self.bucket})"

    def connect(self) -> None:
        self.close()  # a connect() retried after a failure must not leak the previous client
        self._http.open()
        timeout_ms = (min(5.0, self._timeout) * 1000, self._timeout * 1000)  # (connect, read)
        # org "" when absent: the client requires the parameter, InfluxDB 3 ignores it
        client = InfluxDBClient(
            self.url, token=self._token or "", org=self.org or "", timeout=timeout_ms, retries=False
        )
        self._client, self._write_api = client, client.write_api(write_options=SYNCHRONOUS)
        ping = PingService(client.api_client)  # type: ignore[no-untyped-call]  # generated, untyped
        call_client(repr(self), ping.get_ping)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()  # type: ignore[no-untyped-call]
            self._client = self._write_api = None
        self._http.close()

    # -- writes ------------------------------------------------------------------------------

    def prepare(self, points: Sequence[Point]) -> Encoded:
        """The line protocol for ``points``, made ahead of :meth:`write` (any thread; pure)."""
        return Encoded.of(points)

    def write(self, points: Sequence[Point], encoded: Encoded | None = None) -> list[tuple[Point, str]]:
        return write_indexed(points, self._send, self._index, repr(self), encoded)

    def _send(self, lines: Sequence[str]) -> SendResult:
        write_api = self._write_api
        if write_api is None:
            raise StoreUnavailable(f"{self!r} is not connected")
        body = "\n".join(lines)
        r = call_client(repr(self), write_api.write, self.bucket, self.org or "", body, WritePrecision.NS)
        if r is None:
            return None
        if r.status in DATA_ERRORS:
            return line_errors(r.body)
        if r.status == TOO_LARGE:
            return send_halves(lines, self._send, f"point too large for {self!r} (413)")
        return None

    # -- queries (InfluxQL, shared with 1.x) -------------------------------------------------

    def query(self, q: SeriesQuery) -> list[Row]:
        return self._reader.query(q)

    def latest(self, measurement: str, device_id: str) -> dict[str, tuple[int, Any]]:
        return self._reader.latest(measurement, device_id)

    # -- retention (see ingest.stores.retention): the bucket's expiry rule over /api/v2/buckets ---------

    def _bucket(self) -> dict[str, Any]:
        params = {"name": self.bucket, **({"org": self.org} if self.org else {})}
        r = self._http.request("GET", "/api/v2/buckets?" + urlencode(params))
        found = json.loads(r.body).get("buckets") or []
        if not found:
            raise StoreConfigError(f"bucket {self.bucket!r} not found (org {self.org!r})")
        bucket: dict[str, Any] = found[0]
        return bucket

    def retention(self) -> RetentionInfo:
        return RetentionInfo(bucket_retention(self._bucket()), f"bucket {self.bucket!r} (org {self.org!r})")

    def set_retention(self, seconds: int | None) -> RetentionInfo:
        bucket = self._bucket()
        rules = [] if seconds is None else [{"type": "expire", "everySeconds": seconds}]
        self._http.request(
            "PATCH",
            f"/api/v2/buckets/{bucket['id']}",
            body=json.dumps({"retentionRules": rules}).encode(),
            headers={"Content-Type": "application/json"},
        )
        return self.retention()

    def count(self, measurement: str, device_id: str | None = None) -> int:
        return self._reader.count(measurement, device_id)

    def _select(self, statement: str) -> Result:
        fields = {"db": self.bucket, "q": statement, "epoch": "ns"}
        r = self._http.request("GET", "/query", fields=fields, allow=DATA_ERRORS)
        result, error = first_result(r.body)
        if result is None:
            raise StoreUnavailable(f"{self!r}: query failed ({r.status}): {error}")
        return result


def bucket_retention(bucket: dict[str, Any]) -> int | None:
    """Seconds of a bucket's expiry rule (``None``: kept forever)."""
    for rule in bucket.get("retentionRules") or []:
        if rule.get("type", "expire") == "expire" and rule.get("everySeconds"):
            return int(rule["everySeconds"])
    return None
