"""The InfluxDB adapters' HTTP error mapping against a real HTTP peer: a tiny ``http.server`` on a
free port, answering the statuses InfluxDB 2.x/3.x answer (401, 403, 404, 413, 429/503 with
``Retry-After``, 3.x partial writes naming their lines). Not a database: the point is what our
adapter does with each answer. The query path shared by 1.x/2.x/3.x is proven on real influxd."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from core.model import Point
from core.stores import SeriesQuery, StoreNeedsOperator, StoreUnavailable
from ingest.stores import documents_from, timeseries_from
from ingest.stores.fieldindex import MEASUREMENT as INDEX
from ingest.stores.influxdb1 import InfluxDB1Store
from ingest.stores.influxdb2 import InfluxDB2Store
from ingest.stores.influxhttp import retry_after
from ingest.stores.lineprotocol import encode_batch
from ingest.stores.mongo import MongoDocumentStore
from ingest.writing.failures import NEEDS_OPERATOR, UNAVAILABLE, classify
from iot.cli.toolkit import settings
from tests.servers import free_port

M = "sensor_readings"
T0 = 1_764_000_000 * 10**9


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    lines: list[str]


Reply = tuple[int, dict[str, str], bytes]


@dataclass
class Peer:
    """What the peer answers (``answer(request)``) and every request it saw."""

    port: int
    answer: Callable[[Request], Reply]
    seen: list[Request] = field(default_factory=list)

    @property
    def influxdb2(self) -> str:
        return f"influxdb://127.0.0.1:{self.port}?org=o&bucket=b"

    @property
    def influxdb1(self) -> str:
        return f"influxdb1://127.0.0.1:{self.port}/db"


@pytest.fixture
def peer() -> Iterator[Peer]:
    p = Peer(free_port(), lambda r: (204, {}, b""))
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            u = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            query = {k: v[-1] for k, v in parse_qs(u.query).items()}
            if self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
                query.update({k: v[-1] for k, v in parse_qs(body).items()})
                body = ""
            req = Request(
                self.command,
                u.path,
                query,
                {k.lower(): v for k, v in self.headers.items()},
                body.split("\n") if body else [],
            )
            with lock:
                p.seen.append(req)
            status, headers, data = p.answer(req)
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _handle

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", p.port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield p
    server.shutdown()
    server.server_close()


def pts(n: int, value: Callable[[int], Any] = float) -> list[Point]:
    return [Point(M, "d1", {"v": value(i)}, T0 + i) for i in range(n)]


def connected(peer: Peer, token: str | None = "tok") -> InfluxDB2Store:
    store = InfluxDB2Store.from_url(peer.influxdb2, token=token)
    store.connect()
    return store


@pytest.mark.parametrize("status", [401, 403, 404])
def test_permanent_statuses_need_an_operator(peer: Peer, status: int) -> None:
    store = connected(peer)
    peer.answer = lambda r: (status, {"Content-Type": "application/json"}, b'{"message":"nope"}')
    with pytest.raises(StoreNeedsOperator) as e:
        store.write(pts(3))
    assert f"answered {status}: nope" in str(e.value)
    assert classify(e.value).kind == NEEDS_OPERATOR
    assert len(peer.seen) == 2  # ping + one write: no retry loop inside the adapter
    with pytest.raises(StoreNeedsOperator):
        store.query(SeriesQuery(M, "d1", 0))
    store.close()


@pytest.mark.parametrize(
    ("status", "header", "expected"),
    [(429, "7", 7.0), (503, "120", 120.0), (503, None, None), (500, None, None)],
)
def test_transient_statuses_carry_retry_after(
    peer: Peer, status: int, header: str | None, expected: float | None
) -> None:
    store = connected(peer)
    headers = {"Retry-After": header} if header else {}
    peer.answer = lambda r: (status, headers, b'{"message":"busy"}')
    with pytest.raises(StoreUnavailable) as e:
        store.write(pts(2))
    assert not isinstance(e.value, StoreNeedsOperator)
    assert classify(e.value).kind == UNAVAILABLE
    assert e.value.retry_after == expected
    store.close()


def test_retry_after_as_http_date() -> None:
    assert retry_after(formatdate(1000.0 + 30, usegmt=True), now=1000.0) == 30.0
    assert retry_after("soon") is None and retry_after(None) is None


def test_413_splits_the_batch_and_refuses_only_a_single_oversize_point(peer: Peer) -> None:
    store = connected(peer)
    stored: list[str] = []

    def answer(r: Request) -> Reply:
        if r.path != "/api/v2/write":
            return 204, {}, b""
        if len(r.lines) > 8 or any("huge" in line for line in r.lines):  # a body limit
            return 413, {}, b'{"message":"request too large"}'
        stored.extend(line for line in r.lines if not line.startswith(INDEX))
        return 204, {}, b""

    peer.answer = answer
    points = pts(50)
    points[33] = Point(M, "d1", {"huge": "x" * 100}, T0 + 33)
    rejected = store.write(points)
    assert [p.ts_ns for p, _ in rejected] == [T0 + 33]
    assert "too large" in rejected[0][1] and "413" in rejected[0][1]
    assert len(stored) == 49 and len(set(stored)) == 49
    accepted = [r for r in peer.seen if r.path == "/api/v2/write" and not any("huge" in x for x in r.lines)]
    data = [[x for x in r.lines if not x.startswith(INDEX)] for r in accepted if len(r.lines) <= 8]
    assert sum(len(lines) for lines in data) == 49
    store.close()


def v3_partial(bad: list[int], limit: int = 100) -> bytes:
    data = [{"original_line": "…", "line_number": n, "error_message": f"line {n} refused"} for n in bad[:limit]]
    return json.dumps({"error": "partial write of line protocol occurred", "data": data}).encode()


def test_v3_partial_write_names_its_lines(peer: Peer) -> None:
    store = connected(peer)

    def answer(r: Request) -> Reply:
        if r.path != "/api/v2/write":
            return 200, {}, b"{}"
        bad = [i + 1 for i, line in enumerate(r.lines) if '"' in line]  # string values refused
        return (400, {}, v3_partial(bad)) if bad else (204, {}, b"")

    peer.answer = answer
    points = pts(40, lambda i: "s" if i in (3, 17, 39) else float(i))
    rejected = store.write(points)
    assert [p.ts_ns - T0 for p, _ in rejected] == [3, 17, 39]
    assert [why for _, why in rejected] == ["line 4 refused", "line 18 refused", "line 40 refused"]
    writes = [r for r in peer.seen if r.path == "/api/v2/write" and not r.lines[0].startswith(INDEX)]
    assert len(writes) == 1  # the server named them: no bisection
    assert writes[0].query == {"org": "o", "bucket": "b", "precision": "ns"}
    assert writes[0].headers["authorization"] == "Token tok"
    store.close()


def test_v3_partial_write_lists_at_most_100_lines(peer: Peer) -> None:
    store = connected(peer)

    def answer(r: Request) -> Reply:
        bad = [i + 1 for i, line in enumerate(r.lines) if '"' in line]
        return (400, {}, v3_partial(bad)) if bad else (204, {}, b"")

    peer.answer = answer
    points = pts(300, lambda i: "s" if i % 2 else float(i))  # 150 refused, only 100 listed at first
    rejected = store.write(points)
    assert sorted(p.ts_ns - T0 for p, _ in rejected) == list(range(1, 300, 2))
    store.close()


def test_v2_partial_write_is_bisected(peer: Peer) -> None:
    store = connected(peer)

    def answer(r: Request) -> Reply:
        if any('"' in line for line in r.lines):
            return 422, {}, b'{"code":"unprocessable entity","message":"failure writing points: field type conflict"}'
        return 204, {}, b""

    peer.answer = answer
    rejected = store.write(pts(16, lambda i: "s" if i == 9 else float(i)))
    assert [(p.ts_ns - T0, why) for p, why in rejected] == [(9, "failure writing points: field type conflict")]
    store.close()


def test_writes_go_through_influxdb_client(peer: Peer) -> None:
    store = connected(peer)
    assert store.write(pts(3)) == []
    (w,) = [r for r in peer.seen if r.path == "/api/v2/write" and not r.lines[0].startswith(INDEX)]
    assert w.headers["user-agent"].startswith("influxdb-client-python/")
    assert w.query == {"org": "o", "bucket": "b", "precision": "ns"}
    assert w.lines == encode_batch(pts(3))[1]  # the body is exactly our line protocol
    store.close()


def test_v3_database_without_org(peer: Peer) -> None:
    store = InfluxDB2Store.from_url(f"influxdb://127.0.0.1:{peer.port}?bucket=db3", token="tok")
    store.connect()
    assert store.write(pts(2)) == []
    writes = [r for r in peer.seen if r.path == "/api/v2/write"]
    assert len(writes) == 2  # the data, then the field index
    assert [len(r.lines) for r in writes if not r.lines[0].startswith(INDEX)] == [2]
    assert all(r.query == {"bucket": "db3", "precision": "ns"} for r in writes)  # org sent empty: 3.x ignores it
    store.close()


@pytest.mark.parametrize(("status", "error"), [(401, StoreNeedsOperator), (503, StoreUnavailable)])
def test_connect_maps_the_ping_answer(peer: Peer, status: int, error: type[Exception]) -> None:
    peer.answer = lambda r: (status, {"Retry-After": "5"}, b'{"message":"no"}')
    store = InfluxDB2Store.from_url(peer.influxdb2, token="tok")
    with pytest.raises(error) as e:
        store.connect()
    assert f"answered {status}: no" in str(e.value)
    assert peer.seen[-1].path == "/ping" and peer.seen[-1].headers["authorization"] == "Token tok"
    store.close()


def test_unreachable_server_is_transient() -> None:
    store = InfluxDB2Store.from_url(f"influxdb://127.0.0.1:{free_port()}?org=o&bucket=b", token="tok")
    with pytest.raises(StoreUnavailable) as e:
        store.connect()
    assert not isinstance(e.value, StoreNeedsOperator)
    assert "unreachable" in str(e.value) and "tok" not in str(e.value)
    with pytest.raises(StoreUnavailable, match="unreachable") as e:
        store.write(pts(1))  # still no server: the write fails the same transient way
    assert not isinstance(e.value, StoreNeedsOperator)
    store.close()
    with pytest.raises(StoreUnavailable, match="not connected"):
        store.write(pts(1))


def test_influxdb1_maps_statuses_the_same_way(peer: Peer) -> None:
    store = InfluxDB1Store.from_url(peer.influxdb1)
    peer.answer = lambda r: (200, {}, b'{"results":[{"statement_id":0}]}')
    store.connect()
    peer.answer = lambda r: (404, {}, b'{"error":"database not found: \\"db\\""}')
    with pytest.raises(StoreNeedsOperator, match="database not found"):
        store.write(pts(1))
    peer.answer = lambda r: (503, {"Retry-After": "3"}, b"")
    with pytest.raises(StoreUnavailable) as e:
        store.write(pts(1))
    assert e.value.retry_after == 3.0
    store.close()


def test_secrets_from_the_secrets_dir_reach_the_adapters(
    peer: Peer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "iot_influxdb_password").write_text("pw-from-file")
    (secrets / "iot_influxdb_token").write_text("token-from-file")
    (secrets / "iot_mongodb_password").write_text("mongo-from-file")
    for name in ("IOT_INFLUXDB_PASSWORD", "IOT_INFLUXDB_TOKEN", "IOT_MONGODB_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IOT_SECRETS_DIR", str(secrets))
    monkeypatch.chdir(tmp_path)  # no stray .env

    import base64

    peer.answer = lambda r: (200, {}, b'{"results":[{"statement_id":0}]}')
    s = settings(timeseries_url=f"influxdb1://alice@127.0.0.1:{peer.port}/db")
    v1 = timeseries_from(s)
    v1.connect()
    v1.close()
    assert peer.seen[-1].headers["authorization"] == "Basic " + base64.b64encode(b"alice:pw-from-file").decode()

    s = settings(timeseries_url=peer.influxdb2)
    v2 = timeseries_from(s)
    v2.connect()
    v2.close()
    assert peer.seen[-1].headers["authorization"] == "Token token-from-file"

    s = settings(documents_url=f"mongodb://alice@127.0.0.1:{free_port()}/fleet")
    docs = documents_from(s)
    assert isinstance(docs, MongoDocumentStore)
    client = docs._open_client()  # pymongo connects lazily: the credentials are what we check
    try:
        assert client.options.pool_options._credentials.password == "mongo-from-file"
        assert client.write_concern.document == {"w": 1, "j": True}
    finally:
        client.close()
    assert "from-file" not in repr(v1) + repr(v2) + docs.location


@pytest.mark.influxd
def test_v2_v3_query_path_on_real_influxd(influxdb1_url: str) -> None:
    """The 2.x/3.x adapter's reads (InfluxQL on /query, db = bucket) against the real influxd."""
    writer = InfluxDB1Store.from_url(influxdb1_url)
    writer.connect()
    db = influxdb1_url.rsplit("/", 1)[1]
    reader = InfluxDB2Store.from_url(f"influxdb://{writer.host}:{writer.port}?bucket={db}")
    reader.connect()
    try:
        base = T0 - T0 % (60 * 10**9)
        points = [
            Point(M, "d1", {"t": float(i), "s": f"x{i}"}, base + i * 10**10, {"site": "a" if i < 3 else "b"})
            for i in range(6)
        ]
        assert writer.write(points) == []
        q = SeriesQuery(M, "d1", base, until_ns=base + 60 * 10**9, every_s=60, agg="mean")
        assert [r.values for r in reader.query(q)] == [{"t": 2.5}] == [r.values for r in writer.query(q)]
        raw = SeriesQuery(M, "d1", base, until_ns=base + 60 * 10**9, limit=2)
        assert reader.query(raw) == writer.query(raw)
        assert [r.values for r in reader.query(raw)] == [{"t": 4.0, "s": "x4"}, {"t": 5.0, "s": "x5"}]
        assert reader.latest(M, "d1") == {"t": (base + 5 * 10**10, 5.0), "s": (base + 5 * 10**10, "x5")}
        assert reader.count(M, "d1") == 12 == writer.count(M)
    finally:
        reader.close()
        writer.close()
