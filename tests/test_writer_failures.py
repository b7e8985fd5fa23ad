"""No exception ends a writer: a store whose write path raises an arbitrary bug (injected by a
wrapper around the real embedded store; the point is the writer, not the database) leaves the
writer alive, reporting the failure, keeping every batch, and delivering all of it with exact
counts once the store accepts again. Also the pure failure classification and backoff."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from core.backoff import Backoff
from core.model import Point
from core.stores import StoreConfigError, StoreNeedsOperator, StoreUnavailable
from ingest.metrics import Metrics
from ingest.routing import TIMESERIES, Batch, Token
from ingest.stores.partial_writes import Encoded
from ingest.stores.tsembedded import EmbeddedTimeSeriesStore
from ingest.writing.destinations import Refused, by_index
from ingest.writing.failures import NEEDS_OPERATOR, UNAVAILABLE, UNEXPECTED, classify
from ingest.writing.spool import Spool
from ingest.writing.writer import Writer
from tests.servers import wait_for


class BuggyStore:
    """The real embedded store, whose write raises ``error`` while it is set."""

    def __init__(self, inner: EmbeddedTimeSeriesStore) -> None:
        self.inner = inner
        self.error: Exception | None = None
        self.calls = 0

    def write(self, points: Sequence[Point]) -> list[tuple[Point, str]]:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.inner.write(points)


class BuggyDestination:
    """The time-series destination over a :class:`BuggyStore` (connected by the test)."""

    name = TIMESERIES

    def __init__(self, store: BuggyStore) -> None:
        self.store = store

    def write(self, batch: Batch, prepared: Encoded | None = None) -> Refused:
        return by_index(batch.items, self.store.write(batch.items))

    def close(self) -> None:
        pass


def batch(n: int, size: int) -> Batch:
    base = 1_700_000_000_000_000_000 + n * 1000
    points = [Point("sensor_readings", "dev-1", {"t": float(i)}, base + i) for i in range(size)]
    origins = [("devices/dev-1/telemetry", b"{}", 0.0)] * size
    return Batch(TIMESERIES, points, origins, tokens=[n])


class Settled:
    """What the writer settled, in order."""

    def __init__(self, settled: list[Token]) -> None:
        self.settled = settled
        self.lock = threading.Lock()

    def settle(self, tokens: Sequence[Token]) -> None:
        with self.lock:
            self.settled.extend(tokens)


def make_writer(tmp_path: Path, store: BuggyStore, settled: list[Token], metrics: Metrics) -> Writer:
    return Writer(
        BuggyDestination(store),
        Spool(tmp_path / "spool", 1 << 24),
        Settled(settled),
        metrics,
        retry_min=0.01,
        retry_max=0.05,
    )


@pytest.mark.parametrize("error", [KeyError("bug in a write path"), StoreConfigError("invalid MongoDB URL")])
def test_writer_survives_an_arbitrary_exception(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, error: Exception
) -> None:
    inner = EmbeddedTimeSeriesStore(tmp_path / "ts.sqlite3")
    inner.connect()
    store = BuggyStore(inner)
    store.error = error
    settled: list[Token] = []
    metrics = Metrics()
    writer = make_writer(tmp_path, store, settled, metrics)
    writer.start()
    name = type(error).__name__
    try:
        with caplog.at_level(logging.WARNING, logger="iot.ingest"):
            for n in range(10):
                writer.submit(batch(n, 5))
            # every batch is settled (spooled, safe on disk) while the store keeps failing
            wait_for(lambda: len(settled) == 10 and store.calls >= 5, 30, "the batches to be spooled and retried")
            assert writer._thread.is_alive()
            assert writer.spool.records == 10
            health = writer.health()
            assert health["up"] is False
            assert health["state"] == (UNEXPECTED if isinstance(error, KeyError) else NEEDS_OPERATOR)
            assert name in health["reason"]
            assert metrics.value("iot_store_errors_total", dest=TIMESERIES, error=name) == store.calls
            assert inner.count("sensor_readings") == 0

            store.error = None
            wait_for(lambda: writer.spool.records == 0 and writer.idle.is_set(), 30, "the spool to replay")
        assert writer._thread.is_alive()
        assert inner.count("sensor_readings") == 50  # exactly every point, once
        assert sorted(settled) == list(range(10))
        assert writer.health() == {
            "up": True,
            "state": "ok",
            "reason": None,
            "spooled_batches": 0,
            "held_batches": 0,
            "quarantined": 0,
        }
        assert metrics.value("iot_replayed_batches_total", dest=TIMESERIES) == 10
        # logged once for the whole episode (not on every retry), unexpected ones with the traceback
        failures = [r for r in caplog.records if name in r.getMessage()]
        assert len(failures) == 1, [r.getMessage() for r in failures]
        assert (failures[0].exc_info is not None) == isinstance(error, KeyError)
        assert any("is back" in r.getMessage() for r in caplog.records)

        # and it goes on working after recovery
        writer.submit(batch(99, 3))
        wait_for(lambda: inner.count("sensor_readings") == 53, 30, "a write after recovery")
    finally:
        assert writer.stop(10)
        inner.close()


def test_spool_failure_holds_the_batch_unsettled(tmp_path: Path) -> None:
    """If the disk refuses the spool, the batch is held (not acknowledged), never lost or fatal."""
    inner = EmbeddedTimeSeriesStore(tmp_path / "ts.sqlite3")
    inner.connect()
    store = BuggyStore(inner)
    store.error = StoreUnavailable("down")
    settled: list[Token] = []
    metrics = Metrics()
    writer = make_writer(tmp_path, store, settled, metrics)

    def broken_append(record: object) -> None:
        raise OSError(28, "No space left on device")

    real_append = writer.spool.append
    writer.spool.append = broken_append  # type: ignore[method-assign]
    writer.start()
    try:
        writer.submit(batch(1, 4))
        wait_for(lambda: len(writer.held) == 1, 30, "the batch to be held")
        assert settled == [] and writer._thread.is_alive()
        assert writer.health()["state"] == UNAVAILABLE
        assert metrics.value("iot_spool_errors_total", dest=TIMESERIES, error="OSError") >= 1
        writer.spool.append = real_append  # type: ignore[method-assign]
        store.error = None
        wait_for(lambda: settled == [1], 30, "the held batch to be written")
        assert inner.count("sensor_readings") == 4
    finally:
        assert writer.stop(10)
        inner.close()


def test_classify() -> None:
    assert classify(StoreUnavailable("x")).kind == UNAVAILABLE
    assert classify(StoreNeedsOperator("401 unauthorized")).kind == NEEDS_OPERATOR
    assert classify(StoreConfigError("bad URL")).kind == NEEDS_OPERATOR
    p = classify(ZeroDivisionError("division by zero\n[SQL: secret stuff]"))
    assert (p.kind, p.error, p.message) == (UNEXPECTED, "ZeroDivisionError", "division by zero")
    assert p.same(classify(ZeroDivisionError("other text")))
    assert not p.same(classify(KeyError("k")))


def test_backoff_is_jittered_bounded_and_honours_retry_after() -> None:
    b = Backoff(1.0, 8.0, random.Random(3))
    delays = [b.failed() for _ in range(8)]
    ceilings = [1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0, 8.0]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len(set(delays)) == len(delays)  # jittered: no two retries in lockstep
    assert b.failed(retry_after=30.0) == 30.0
    b.reset()
    assert b.failed() <= 1.0
