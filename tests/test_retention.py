"""``iot timeseries retention show|set``: the embedded store prunes, influxd 1.x gets a retention
policy (real server), InfluxDB 2.x a bucket expiry (skipped without a server)."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from core.model import Point
from core.stores import SeriesQuery
from ingest.stores import open_timeseries
from ingest.stores.retention import Retention, human, parse_every, parse_go_duration, parse_retention, shard_duration_s
from tests.cli_runner import run_iot

S = 10**9
DAY = 86400


def test_parse_and_print_durations() -> None:
    assert parse_retention("90d") == 90 * DAY and parse_retention("12w") == 84 * DAY
    assert parse_retention("36h") == 36 * 3600 and parse_retention("1y") == 365 * DAY
    assert parse_retention("inf") is None and parse_retention("0") is None
    for bad in ("90", "10m", "d", "-1d", "1.5d"):
        with pytest.raises(ValueError):
            parse_retention(bad)
    assert human(90 * DAY) == "90d" and human(14 * DAY) == "2w" and human(None) == "forever"
    assert parse_go_duration("2160h0m0s") == 90 * DAY and parse_go_duration("0s") is None
    assert parse_go_duration("1h30m0s") == 5400
    assert shard_duration_s(DAY) == 3600 and shard_duration_s(90 * DAY) == DAY and shard_duration_s(None) == 7 * DAY


def _points(now: int) -> list[Point]:
    return [Point("sensor_readings", "d1", {"t": float(h)}, now - h * 3600 * S) for h in range(0, 10)]


def test_embedded_store_prunes_past_its_retention(tmp_path: Path) -> None:
    store: Any = open_timeseries("embedded", data_dir=tmp_path)
    store.connect()
    now = time.time_ns()
    assert isinstance(open_timeseries("embedded", data_dir=tmp_path), Retention)
    assert store.retention().seconds is None
    assert store.write(_points(now)) == []
    info = store.set_retention(4 * 3600 + 1800)  # 4.5 h: the points 0..4 h old stay
    assert info.seconds == 16200
    assert store.count("sensor_readings") == 5
    store.close()
    store.connect()  # kept in the file
    assert store.retention().seconds == 16200
    assert store.write(_points(now)) == []  # old points written again (late data) ...
    assert store.prune(now) == 5  # ... go on the next prune
    store._next_prune = 0.0  # the write-path prune, due now
    store.write(_points(now))
    assert store.count("sensor_readings") == 5
    store.set_retention(None)
    store.write(_points(now))
    assert store.count("sensor_readings") == 10
    store.close()


@pytest.mark.influxd
def test_influxdb1_retention_policy(influxdb1_url: str) -> None:
    store: Any = open_timeseries(influxdb1_url)
    store.connect()
    try:
        before = store.retention()
        assert before.seconds is None and "autogen" in before.where
        assert store.set_retention(90 * DAY).seconds == 90 * DAY
        assert store.set_retention(36 * 3600).seconds == 36 * 3600  # shard duration follows (1h)
        rp = store._select(f'SHOW RETENTION POLICIES ON "{store.db}"', db=None)["series"][0]
        row = dict(zip(rp["columns"], rp["values"][0], strict=True))
        assert (row["duration"], row["shardGroupDuration"], row["default"]) == ("36h0m0s", "1h0m0s", True)
        assert store.set_retention(None).seconds is None
    finally:
        store.close()


def test_influxdb2_bucket_retention(influxdb2_url: str) -> None:
    import os

    store: Any = open_timeseries(influxdb2_url, token=os.environ.get("IOT_INFLUXDB_TOKEN"))
    store.connect()
    try:
        before = store.retention().seconds
        assert store.set_retention(90 * DAY).seconds == 90 * DAY
        store.set_retention(before)
    finally:
        store.close()


def test_cli_show_set_and_permissions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IOT_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("IOT_API_KEY", raising=False)
    assert run_iot(monkeypatch, capsys, "registry", "migrate").code == 0
    shown = run_iot(monkeypatch, capsys, "timeseries", "retention", "show")
    assert shown.code == 0 and "retention: forever" in shown.out
    done = run_iot(monkeypatch, capsys, "timeseries", "retention", "set", "90d")
    assert done.code == 0 and "retention: 90d" in done.out, done.err
    js = run_iot(monkeypatch, capsys, "timeseries", "retention", "show", "--json").json()
    assert js["retention_s"] == 90 * DAY and js["retention"] == "90d"
    bad = run_iot(monkeypatch, capsys, "timeseries", "retention", "set", "ninety")
    assert bad.code == 2 and "invalid retention" in bad.err
    admin = run_iot(monkeypatch, capsys, "registry", "keys", "add", "--name", "root", "--role", "admin")
    assert admin.code == 0
    monkeypatch.setenv("IOT_API_KEY", admin.out.strip())
    viewer = run_iot(monkeypatch, capsys, "registry", "keys", "add", "--name", "vic", "--role", "viewer")
    assert viewer.code == 0
    monkeypatch.setenv("IOT_API_KEY", viewer.out.strip())
    denied = run_iot(monkeypatch, capsys, "timeseries", "retention", "set", "30d")
    assert denied.code == 3 and "permission denied" in denied.err
    assert run_iot(monkeypatch, capsys, "timeseries", "retention", "show").code == 0
    monkeypatch.setenv("IOT_API_KEY", admin.out.strip())
    assert run_iot(monkeypatch, capsys, "timeseries", "retention", "set", "30d").code == 0


# -- downsampling ---------------------------------------------------------------------------------


def test_parse_every() -> None:
    assert parse_every("1m") == 60 and parse_every("1h") == 3600 and parse_every("off") is None
    for bad in ("1s", "2d", "x", "1y"):
        with pytest.raises(ValueError):
            parse_every(bad)


def test_embedded_rollup_keeps_minute_means_past_raw_retention(tmp_path: Path) -> None:
    store: Any = open_timeseries("embedded", data_dir=tmp_path)
    store.connect()
    now = time.time_ns() // (60 * S) * 60 * S
    start = now - 3 * 3600 * S  # three hours of 10-second readings from two devices
    points = [
        Point("sensor_readings", d, {"t": float(i % 6) + (10 if d == "d2" else 0), "on": True}, start + i * 10 * S,
              {"site": "s"})
        for i in range(3 * 360)
        for d in ("d1", "d2")
    ]  # fmt: skip
    assert store.write(points) == []
    info = store.set_downsampling(60)
    assert info.every_s == 60 and "sensor_readings_1m" in info.targets
    q = SeriesQuery("sensor_readings_1m", "d1", start, now, limit=10_000)
    rows = store.query(q)
    assert len(rows) == 3 * 60 - 1  # every whole minute but the newest, still open
    assert all(r.values == {"t": 2.5} for r in rows)  # mean of 0..5; the bool field is not averaged
    assert store.query(replace(q, device_id="d2"))[0].values == {"t": 12.5}
    assert store.prune(now) == 0  # no retention: nothing deleted, nothing rolled twice
    assert len(store.query(q)) == 3 * 60 - 1
    store.set_retention(3600)  # raw data older than an hour goes; the means stay
    assert 0 < store.count("sensor_readings") <= 2 * 2 * 361  # readings (2 fields) of the last hour
    assert len(store.query(q)) == 3 * 60 - 1
    store.close()
    store.connect()
    assert store.downsampling().every_s == 60
    assert store.set_downsampling(None).every_s is None
    store.close()


@pytest.mark.influxd
def test_influxdb1_continuous_query_and_its_statement(influxdb1_url: str) -> None:
    from ingest.stores.influxdb1 import rollup_select

    store: Any = open_timeseries(influxdb1_url)
    store.connect()
    try:
        assert store.downsampling().every_s is None
        info = store.set_downsampling(60)
        assert info.every_s == 60 and info.targets == ("iot_rollup.sensor_readings", "iot_rollup.device_metrics")
        assert store._downsample_cqs() == ["iot_downsample_60s"]
        assert store.set_downsampling(300).every_s == 300 and store._downsample_cqs() == ["iot_downsample_300s"]
        # what the continuous query runs, run once by hand over past data: it must write the means
        start = (time.time_ns() // (60 * S) - 30) * 60 * S
        points = [Point("sensor_readings", "d1", {"t": float(i % 6)}, start + i * 10 * S) for i in range(60)]
        assert store.write(points) == []
        where = f"time >= {start} AND time < {start + 600 * S}"
        store._select(rollup_select(store.db, "autogen", 60, where))
        means = store._select('SELECT mean_t FROM "iot_rollup"."sensor_readings" WHERE device_id = \'d1\'')
        values = [v[1] for v in means["series"][0]["values"]]
        assert values == [2.5] * 10
        assert store.set_downsampling(None).every_s is None and store._downsample_cqs() == []
    finally:
        store.close()


def test_cli_downsample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("IOT_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("IOT_API_KEY", raising=False)
    assert run_iot(monkeypatch, capsys, "registry", "migrate").code == 0
    assert "downsampling: off" in run_iot(monkeypatch, capsys, "timeseries", "downsample", "show").out
    done = run_iot(monkeypatch, capsys, "timeseries", "downsample", "set", "5m")
    assert done.code == 0 and "means per 5m into sensor_readings_5m, device_metrics_5m" in done.out, done.err
    js = run_iot(monkeypatch, capsys, "timeseries", "downsample", "show", "--json").json()
    assert js["every_s"] == 300
    bad = run_iot(monkeypatch, capsys, "timeseries", "downsample", "set", "5s")
    assert bad.code == 2 and "between 10s and 1d" in bad.err
