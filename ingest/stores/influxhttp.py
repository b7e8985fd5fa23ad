"""HTTP to an InfluxDB server (1.x, 2.x or 3.x): the one place where transport errors and HTTP
statuses become our exceptions, whether the request went through our urllib3 pool
(:class:`InfluxHTTP`) or through ``influxdb-client`` (:func:`call_client`: its ``ApiException``
carries status, headers and body; its transport failures are urllib3's).

=================  =====================================================================
status             meaning here
=================  =====================================================================
2xx                success
400 / 422          refused data: the adapter reads the body (partial write, type conflict)
413                body too large: the adapter splits the batch
401 / 403          credentials refused: :class:`StoreNeedsOperator`
404                database / bucket (or endpoint) missing: :class:`StoreNeedsOperator`
429, 5xx           transient: :class:`StoreUnavailable`, with the server's ``Retry-After``
other 4xx          :class:`StoreNeedsOperator` (waiting will not change the answer)
=================  =====================================================================
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

import urllib3

from core.stores import StoreNeedsOperator, StoreUnavailable

DATA_ERRORS = (400, 422)
TOO_LARGE = 413


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    retry_after: float | None = None


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def error_text(body: bytes) -> str:
    """The server's message from a JSON error body (``error`` or ``message``), else the text."""
    try:
        doc = json.loads(body)
        if isinstance(doc, dict):
            text = doc.get("error") or doc.get("message")
            if text:
                return str(text)[:300]
    except ValueError:
        pass
    return body.decode(errors="replace")[:300]


def check_status(what: str, r: Response) -> None:
    """Raise ours for statuses that are not success, refused data or too large."""
    s = r.status
    if s < 300 or s in DATA_ERRORS or s == TOO_LARGE:
        return
    detail = f"{what} answered {s}: {error_text(r.body)}"
    if s in (401, 403):
        raise StoreNeedsOperator(f"{detail} (credentials refused: check the token/password)")
    if s == 404:
        raise StoreNeedsOperator(f"{detail} (database/bucket missing?)")
    if s == 429 or s >= 500:
        raise StoreUnavailable(detail, retry_after=r.retry_after)
    raise StoreNeedsOperator(detail)


class InfluxHTTP:
    """A small connection pool to one server. ``open()`` before requests, ``close()`` after."""

    def __init__(self, host: str, port: int, *, ssl: bool, headers: dict[str, str], timeout: float, what: str) -> None:
        self.host, self.port, self.ssl = host, port, ssl
        self._headers = headers
        self._timeout = urllib3.Timeout(connect=min(5.0, timeout), read=timeout)
        self._what = what
        self._pool: urllib3.HTTPConnectionPool | None = None

    def open(self) -> None:
        self.close()  # a connect() retried after a failure must not leak the previous pool
        cls = urllib3.HTTPSConnectionPool if self.ssl else urllib3.HTTPConnectionPool
        self._pool = cls(self.host, self.port, maxsize=4, block=False, timeout=self._timeout, retries=False)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        fields: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        allow: tuple[int, ...] = (),
    ) -> Response:
        """One request; transport failures raise :class:`StoreUnavailable`, statuses are checked
        (except those in ``allow``, returned for the caller to handle)."""
        if self._pool is None:
            raise StoreUnavailable(f"{self._what} is not connected")
        all_headers = {**self._headers, **(headers or {})}
        try:
            r: Any
            if fields is not None and method == "GET":
                r = self._pool.urlopen(method, f"{path}?{urlencode(fields)}", headers=all_headers)
            elif fields is not None:
                r = self._pool.request(method, path, fields=fields, encode_multipart=False, headers=all_headers)
            else:
                r = self._pool.urlopen(method, path, body=body, headers=all_headers)
        except urllib3.exceptions.HTTPError as e:
            raise StoreUnavailable(f"{self._what} unreachable: {type(e).__name__}") from None
        resp = Response(r.status, r.data, retry_after(r.headers.get("Retry-After")))
        if resp.status not in allow:
            check_status(self._what, resp)
        return resp


def call_client(what: str, request: Callable[..., object], *args: object) -> Response | None:
    """Run one ``influxdb-client`` request, ``request(*args)``: None on success; the :class:`Response` for refused data
    (400/422) or too large (413), for the caller to read; ours raised for every other answer
    (the table above) and for transport failures."""
    from influxdb_client.rest import ApiException  # the client's, loaded only by its users

    try:
        request(*args)
    except ApiException as e:
        if not e.status:  # no HTTP answer: the client's own TLS / request failure
            reason = " ".join(str(e.reason).split())[:200]
            raise StoreUnavailable(f"{what} unreachable: {reason}") from None
        body = e.body if isinstance(e.body, bytes) else str(e.body or "").encode()
        headers: Any = e.headers or {}
        r = Response(int(e.status), body, retry_after(headers.get("Retry-After")))
        check_status(what, r)
        return r
    except urllib3.exceptions.HTTPError as e:
        raise StoreUnavailable(f"{what} unreachable: {type(e).__name__}") from None
    return None
