"""A time-series batch is encoded to line protocol by the writer's prepare stage (its own thread),
so the writer thread only sends and the next batch is encoded while influxd writes this one. The
encoding is exactly ``encode_batch`` of the batch's points, is used only for those very points (a
replayed or otherwise rebuilt batch is encoded afresh), partial-write bisection works on it
unchanged, a failed prepare only means the writer encodes it, and batches keep their order."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

import ingest.stores.partial_writes as partial_writes
from core.model import DeadLetter, Point, Reason
from ingest.metrics import Metrics
from ingest.routing import TIMESERIES, Batch, Token
from ingest.stores.influxdb1 import InfluxDB1Store
from ingest.stores.lineprotocol import encode_batch
from ingest.stores.partial_writes import Encoded, SendResult, write_points
from ingest.writing.destinations import StoreDestination
from ingest.writing.spool import Spool
from ingest.writing.writer import Writer
from tests.servers import wait_for

T0 = 1_700_000_000_000_000_000


def points() -> list[Point]:
    return [
        Point("m", "dev-1", {"t": 1.5}, T0 + 1),
        Point("m", "dev-1", {"t": "text"}, T0 + 2),  # a field-type conflict once "t" is a float
        Point("m", "dev-1", {"t": 2.5}, T0 + 3),
        Point("m", "dev-1", {"t": float("nan")}, T0 + 4),  # unencodable
        Point("m", "dev,1", {"t": 3.5, "s": 'a "b"'}, T0 + 5, {"site": "x y"}),
    ]


class Sent:
    """A ``send`` that takes everything and records each request's lines."""

    def __init__(self) -> None:
        self.requests: list[list[str]] = []

    def __call__(self, lines: Sequence[str]) -> SendResult:
        self.requests.append(list(lines))
        return None


def test_encoded_is_encode_batch_of_the_same_points() -> None:
    pts = points()
    enc = Encoded.of(pts)
    ok, lines, bad = encode_batch(pts)
    assert (list(enc.ok), list(enc.lines), list(enc.bad)) == (ok, lines, bad)
    assert [p for p, _ in enc.bad] == [pts[3]]
    assert enc.fits(pts) and enc.fits(tuple(pts))


def test_an_encoding_is_used_only_for_the_points_it_was_made_from() -> None:
    pts = points()
    marked = Encoded(tuple(pts), tuple(pts), tuple(f"marker {i}" for i in range(len(pts))), ())
    sent = Sent()
    write_points(pts, sent, marked)
    assert sent.requests == [list(marked.lines)]  # it fits: sent as made, nothing encoded again

    for changed in (
        [*pts[:2], Point("m", "dev-1", {"t": 2.5}, T0 + 3), *pts[3:]],  # an equal but other object
        pts[1:],  # fewer (a split)
        list(reversed(pts)),  # reordered
    ):
        sent = Sent()
        refused = write_points(changed, sent, marked)
        assert sent.requests == [encode_batch(changed)[1]]
        assert [p for p, _ in refused] == [pts[3]]


class Settled:
    def __init__(self) -> None:
        self.tokens: list[Token] = []
        self.letters: list[DeadLetter] = []
        self.lock = threading.Lock()

    def settle(self, tokens: Sequence[Token]) -> None:
        with self.lock:
            self.tokens.extend(tokens)

    def dead_letter(self, letters: list[DeadLetter], tokens: list[Token]) -> None:
        with self.lock:
            self.letters.extend(letters)
            self.tokens.extend(tokens)


def writer_for(tmp: Path, store: InfluxDB1Store, settled: Settled) -> Writer:
    return Writer(
        StoreDestination(TIMESERIES, store),
        Spool(tmp / "spool", 1 << 24),
        settled,
        Metrics(),
        dead_letters=settled,
        retry_min=0.01,
        retry_max=0.05,
    )


def threads_encoding(monkeypatch: pytest.MonkeyPatch, fail_first: int = 0) -> list[str]:
    """Record which thread runs each ``encode_batch``; the first ``fail_first`` calls raise."""
    names: list[str] = []
    real = encode_batch

    def counted(pts: Sequence[Point]) -> tuple[list[Point], list[str], list[tuple[Point, str]]]:
        names.append(threading.current_thread().name)
        if len(names) <= fail_first:
            raise RuntimeError("a bug while preparing")
        return real(pts)

    monkeypatch.setattr(partial_writes, "encode_batch", counted)
    return names


@pytest.mark.influxd
def test_a_batch_is_encoded_by_the_prepare_stage_and_bisected_on_influxd(
    tmp_path: Path, influxdb1_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = InfluxDB1Store.from_url(influxdb1_url)
    store.connect()
    assert store.write([Point("m", "dev-1", {"t": 0.5}, T0)]) == []  # "t" is a float field from now on
    encoders = threads_encoding(monkeypatch)
    settled = Settled()
    writer = writer_for(tmp_path, store, settled)
    pts = points()
    batch = Batch(TIMESERIES, pts, [(f"devices/dev-1/telemetry/{i}", b"{}", 0.0) for i in range(len(pts))], [7])
    writer.start()
    try:
        writer.submit(batch)
        wait_for(lambda: settled.tokens == [7], 30, "the batch to be written and settled")
    finally:
        assert writer.stop(10)
        store.close()
    # encoded once, by the prepare stage; the bisection re-sends slices of those lines
    assert encoders == ["prepare-timeseries"]
    refused = sorted((letter.topic, letter.reason) for letter in settled.letters)
    assert refused == [
        ("devices/dev-1/telemetry/1", str(Reason.STORE_REJECTED)),  # pinned by bisection
        ("devices/dev-1/telemetry/3", str(Reason.STORE_REJECTED)),  # unencodable
    ]
    assert "conflict" in next(x.detail for x in settled.letters if x.topic.endswith("/1"))
    store.connect()
    try:
        assert store.count("m", "dev-1") == 3 and store.count("m", "dev,1") == 2
    finally:
        store.close()


def many(n: int, size: int) -> list[Batch]:
    out = []
    for b in range(n):
        pts = [Point("seq", f"d{i % 3}", {"v": float(b * size + i)}, T0 + b * size + i) for i in range(size)]
        out.append(Batch(TIMESERIES, pts, [("devices/d/telemetry", b"{}", 0.0)] * size, [b]))
    return out


@pytest.mark.influxd
def test_a_failed_prepare_is_written_by_the_writer_and_order_holds_through_stop(
    tmp_path: Path, influxdb1_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = InfluxDB1Store.from_url(influxdb1_url)
    encoders = threads_encoding(monkeypatch, fail_first=2)
    settled = Settled()
    writer = writer_for(tmp_path, store, settled)
    batches = many(20, 50)
    writer.start()
    for b in batches:
        writer.submit(b)
    assert writer.stop(30)  # the stop marker goes behind every batch submitted before it
    store.close()
    assert settled.tokens == list(range(20))  # each settled once, in submission order
    assert settled.letters == []
    # the first two prepares raised: those batches were encoded by the writer thread itself
    assert encoders[:2] == ["prepare-timeseries"] * 2
    assert sorted(encoders[2:]).count("writer-timeseries") == 2
    assert encoders.count("prepare-timeseries") == 20
    store.connect()
    try:
        assert sum(store.count("seq", f"d{k}") for k in range(3)) == 1000
    finally:
        store.close()
