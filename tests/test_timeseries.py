"""The time-series stores against real backends: embedded SQLite, influxd 1.x, InfluxDB 2.x."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.model import Point
from core.stores import SeriesQuery, StoreConfigError, StoreUnavailable, TimeSeriesStore
from ingest.stores import open_timeseries
from ingest.stores.influxql import aggregate_statement, count_statement, last_statement, quote_string, raw_statement
from ingest.stores.tsquery import check_query
from tests.servers import free_port

M = "sensor_readings"
S = 10**9
T0 = (time.time_ns() // (60 * S)) * 60 * S - 3600 * S  # a minute boundary an hour ago


@pytest.fixture(
    params=[
        "embedded",
        pytest.param("influxdb1", marks=pytest.mark.influxd),
        pytest.param("influxdb2", marks=pytest.mark.influxdb2),
    ]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TimeSeriesStore]:
    if request.param == "embedded":
        s = open_timeseries("embedded", data_dir=tmp_path)
    elif request.param == "influxdb1":
        s = open_timeseries(request.getfixturevalue("influxdb1_url"))
    else:
        s = open_timeseries(request.getfixturevalue("influxdb2_url"), token=os.environ.get("IOT_INFLUXDB_TOKEN"))
    s.connect()
    yield s
    s.close()


def pts(device: str, n: int, start: int = T0, step: int = 10 * S, **tags: str) -> list[Point]:
    return [
        Point(M, device, {"temperature": 20.0 + i, "state": f"s{i}"}, start + i * step, dict(tags)) for i in range(n)
    ]


def test_write_query_raw_newest_last(store: TimeSeriesStore) -> None:
    assert store.write(pts("d1", 12, site="hall") + pts("d2", 3)) == []
    rows = store.query(SeriesQuery(M, "d1", T0 - S, limit=5))
    assert [r.ts_ns for r in rows] == [T0 + i * 10 * S for i in range(7, 12)]
    assert rows[-1].values == {"temperature": 31.0, "state": "s11"}
    only = store.query(SeriesQuery(M, "d1", T0, until_ns=T0 + 30 * S, field="temperature"))
    assert [r.values for r in only] == [{"temperature": 20.0}, {"temperature": 21.0}, {"temperature": 22.0}]
    assert store.query(SeriesQuery(M, "nobody", T0)) == []


def test_rewrite_is_idempotent_and_merges_fields(store: TimeSeriesStore) -> None:
    batch = pts("d1", 5)
    assert store.write(batch) == []
    assert store.write(batch) == []
    assert store.count(M, "d1") == 10
    assert store.write([Point(M, "d1", {"temperature": 99.0, "extra": True}, T0)]) == []
    rows = store.query(SeriesQuery(M, "d1", T0, until_ns=T0 + 1))
    assert [r.values for r in rows] == [{"temperature": 99.0, "state": "s0", "extra": True}]
    assert store.count(M, "d1") == 11
    assert store.count(M) == 11


def test_aggregates_per_bucket(store: TimeSeriesStore) -> None:
    assert store.write(pts("d1", 12)) == []  # 10 s apart: six per minute
    q = SeriesQuery(M, "d1", T0, until_ns=T0 + 120 * S, every_s=60, agg="mean")
    rows = store.query(q)
    assert [(r.ts_ns, r.values) for r in rows] == [(T0, {"temperature": 22.5}), (T0 + 60 * S, {"temperature": 28.5})]
    expect = {"min": 20.0, "max": 25.0}
    for agg, value in expect.items():
        got = store.query(SeriesQuery(M, "d1", T0, until_ns=T0 + 60 * S, every_s=60, agg=agg))
        assert [r.values for r in got] == [{"temperature": value}]
    last = store.query(SeriesQuery(M, "d1", T0, until_ns=T0 + 120 * S, every_s=60, agg="last"))
    assert [r.values for r in last] == [{"temperature": 25.0, "state": "s5"}, {"temperature": 31.0, "state": "s11"}]
    count = store.query(
        SeriesQuery(M, "d1", T0, until_ns=T0 + 120 * S, every_s=60, agg="count", field="state", limit=1)
    )
    assert [(r.ts_ns, r.values) for r in count] == [(T0 + 60 * S, {"state": 6})]


def test_latest_per_field(store: TimeSeriesStore) -> None:
    assert store.write([*pts("d1", 3), Point(M, "d1", {"humidity": 40.0}, T0 + 5 * S)]) == []
    assert store.write(pts("d2", 1)) == []
    assert store.latest(M, "d1") == {
        "temperature": (T0 + 20 * S, 22.0),
        "state": (T0 + 20 * S, "s2"),
        "humidity": (T0 + 5 * S, 40.0),
    }
    assert store.latest(M, "nobody") == {}


def test_field_type_conflict_rejects_exactly_that_point(store: TimeSeriesStore) -> None:
    assert store.write(pts("d1", 2)) == []
    batch = pts("d1", 40, start=T0 + 100 * S)
    wrong = Point(M, "d1", {"temperature": "hot"}, T0 + 50 * S)
    nan = Point(M, "d1", {"temperature": float("nan")}, T0 + 51 * S)
    rejected = store.write([*batch[:17], wrong, *batch[17:], nan])
    assert [p for p, _ in rejected] == [nan, wrong] or [p for p, _ in rejected] == [wrong, nan]
    reasons = {p.ts_ns: r for p, r in rejected}
    assert "type" in reasons[wrong.ts_ns] and "finite" in reasons[nan.ts_ns]
    assert store.count(M, "d1") == 2 * 42
    assert store.query(SeriesQuery(M, "d1", T0 + 50 * S, until_ns=T0 + 52 * S)) == []


@pytest.mark.influxd
def test_influxdb1_down_is_store_unavailable() -> None:
    s = open_timeseries(f"influxdb1://127.0.0.1:{free_port()}/nodb")
    with pytest.raises(StoreUnavailable):
        s.connect()
    with pytest.raises(StoreUnavailable):
        s.write(pts("d1", 1))


@pytest.mark.influxd
def test_influxdb1_server_gone_mid_stream(tmp_path: Path) -> None:
    from tests.servers import Influxd

    server = Influxd(tmp_path / "influxd").start()
    try:
        s = open_timeseries(server.url("gone"))
        s.connect()
        assert s.write(pts("d1", 2)) == []
        server.stop()
        with pytest.raises(StoreUnavailable):
            s.write(pts("d1", 2, start=T0 + S))
        with pytest.raises(StoreUnavailable):
            s.query(SeriesQuery(M, "d1", T0))
        server.start()
        assert s.write(pts("d1", 2, start=T0 + S)) == []
        assert s.count(M) == 8
        s.close()
    finally:
        server.stop()


@pytest.mark.parametrize(
    "url", ["influxdb1://host:8086/", "influxdb1:///db", "influxdb://h:8086?org=o", "sqlite://", "nosuch://x"]
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(StoreConfigError):
        open_timeseries(url)


def test_sqlite_url_and_password_never_in_repr(tmp_path: Path) -> None:
    s = open_timeseries(f"sqlite:///{tmp_path}/ts.db")
    s.connect()
    assert s.write(pts("d1", 1)) == []
    s.close()
    assert (tmp_path / "ts.db").exists()
    s1 = open_timeseries("influxdb1://bob:s3cret@h:8086/db")
    assert "s3cret" not in repr(s1) and "s3cret" not in str(vars(s1))


def test_query_checks() -> None:
    with pytest.raises(ValueError, match="buckets"):
        check_query(SeriesQuery(M, "d", 0, every_s=1, agg="mean"), now_ns=10**18)
    with pytest.raises(ValueError, match="together"):
        check_query(SeriesQuery(M, "d", 0, every_s=1))
    with pytest.raises(ValueError, match="after"):
        check_query(SeriesQuery(M, "d", 10, until_ns=5))
    assert check_query(SeriesQuery(M, "d", 0, until_ns=5)) == 5


def test_influxql_text() -> None:
    assert quote_string("it's a \\ b") == "'it\\'s a \\\\ b'"
    q = SeriesQuery(M, "d'1", 0, until_ns=600 * S, field="t", every_s=60, agg="mean", limit=7)
    text = aggregate_statement(q, ["t", 'w"x'])
    assert text == (
        'SELECT mean("t"::field) AS "t", mean("w\\"x"::field) AS "w\\"x" FROM "sensor_readings" '
        "WHERE \"device_id\"::tag = 'd\\'1' AND time >= 0 AND time < 600000000000 "
        "GROUP BY time(60s) fill(none) ORDER BY time DESC LIMIT 7"
    )
    raw = raw_statement(SeriesQuery(M, "d", 0, until_ns=S))
    assert raw.startswith('SELECT *::field FROM "sensor_readings" WHERE "device_id"::tag = \'d\'')
    assert "GROUP BY" not in raw  # never per series: a device's series are merged
    assert last_statement(M, "t", "d").startswith('SELECT last("t"::field)')
    assert "WHERE" not in count_statement(M, None) and "::tag = 'd'" in count_statement(M, "d")


def test_aggregates_merge_a_devices_series(store: TimeSeriesStore) -> None:
    """A device whose site tag changed mid-window has two series: still one value per window."""
    assert store.write(pts("d1", 3, site="hall")) == []  # 20, 21, 22 at T0, +10 s, +20 s
    assert store.write(pts("d1", 3, start=T0 + 30 * S, site="roof")) == []  # 20, 21, 22 at +30 s ...
    rows = store.query(SeriesQuery(M, "d1", T0, until_ns=T0 + 60 * S, every_s=60, agg="mean"))
    assert [(r.ts_ns, r.values) for r in rows] == [(T0, {"temperature": 21.0})]
    counted = store.query(SeriesQuery(M, "d1", T0, until_ns=T0 + 60 * S, every_s=60, agg="count", field="state"))
    assert [r.values for r in counted] == [{"state": 6}]
    last = store.query(SeriesQuery(M, "d1", T0, until_ns=T0 + 60 * S, every_s=60, agg="last"))
    assert [r.values for r in last] == [{"temperature": 22.0, "state": "s2"}]
    assert [r.ts_ns for r in store.query(SeriesQuery(M, "d1", T0, limit=10))] == [T0 + i * 10 * S for i in range(6)]
    assert store.latest(M, "d1")["temperature"] == (T0 + 50 * S, 22.0)
