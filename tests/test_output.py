"""``--format table|json|ndjson|csv`` on list and query commands, and streaming long ranges."""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.model import Point
from core.stores import Row, SeriesQuery, TimeSeriesStore
from ingest.stores import open_timeseries
from ingest.stores.export import stream_rows
from iot.cli import output
from iot.cli.toolkit import CliError
from tests.cli_runner import run_iot

S = 10**9
T0 = (time.time_ns() // (3600 * S)) * 3600 * S - 48 * 3600 * S  # two days ago, on the hour


# -- the helper ---------------------------------------------------------------------------------


def test_csv_has_header_iso_utc_times_and_flat_cells() -> None:
    buf = io.StringIO()
    records = [
        {"id": 1, "at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "ok": True, "sites": ["a", "b"], "x": None},
        {"id": 2, "at": datetime(2026, 1, 2, 3, 4, 5, 250000), "ok": False, "sites": None, "x": 1.5, "extra": "y"},
    ]
    output.emit(records, "csv", out=buf)
    rows = list(csv.reader(io.StringIO(buf.getvalue())))
    assert rows[0] == ["id", "at", "ok", "sites", "x", "extra"]
    assert rows[1] == ["1", "2026-01-02T03:04:05Z", "true", '["a","b"]', "", ""]
    assert rows[2] == ["2", "2026-01-02T03:04:05Z", "false", "", "1.5", "y"]


def test_ndjson_one_object_per_line() -> None:
    buf = io.StringIO()
    records: list[dict[str, Any]] = [{"a": 1}, {"a": datetime(2026, 1, 1, tzinfo=UTC)}]
    output.emit(iter(records), "ndjson", out=buf)
    assert [json.loads(line) for line in buf.getvalue().splitlines()] == [{"a": 1}, {"a": "2026-01-01T00:00:00Z"}]


def test_format_option_and_json_flag() -> None:
    assert output.resolve(None, False) == "table"
    assert output.resolve(None, True) == "json"
    assert output.resolve("CSV", False) == "csv"
    assert output.resolve("json", True) == "json"
    with pytest.raises(CliError, match="disagree"):
        output.resolve("csv", True)
    with pytest.raises(CliError, match="invalid --format"):
        output.resolve("xml", False)


# -- streaming a long range -------------------------------------------------------------------


@pytest.fixture(params=["embedded", pytest.param("influxdb1", marks=pytest.mark.influxd)])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    url = "embedded" if request.param == "embedded" else request.getfixturevalue("influxdb1_url")
    monkeypatch.setenv("IOT_TIMESERIES_URL", url)
    s = open_timeseries(url, data_dir=tmp_path)
    s.connect()
    # 6000 points over 50 hours, denser in the middle: windows must shrink and grow
    points = [Point("sensor_readings", "d1", {"t": float(i), "n": i}, T0 + i * 30 * S) for i in range(6000)]
    points += [Point("sensor_readings", "d1", {"t": -1.0}, T0 + 1000 * 30 * S + k * S // 100) for k in range(1, 900)]
    assert s.write(points) == []
    yield s
    s.close()


def _counting(store: TimeSeriesStore, sizes: list[int]) -> Any:
    def query(q: SeriesQuery) -> list[Row]:
        rows = store.query(q)
        sizes.append(len(rows))
        return rows

    return query


def test_stream_returns_every_row_in_order_one_page_at_a_time(store: TimeSeriesStore) -> None:
    sizes: list[int] = []
    q = SeriesQuery("sensor_readings", "d1", T0, limit=10)
    got = list(stream_rows(_counting(store, sizes), q, page=500))
    assert len(got) == 6000 + 899
    assert [r.ts_ns for r in got] == sorted(r.ts_ns for r in got)
    assert len({r.ts_ns for r in got}) == len(got)
    assert max(sizes) <= 500, "no query returned more than a page"


def test_stream_of_aggregates_equals_one_query(store: TimeSeriesStore) -> None:
    q = SeriesQuery("sensor_readings", "d1", T0, T0 + 50 * 3600 * S, field="t", every_s=600, agg="count", limit=10**6)
    sizes: list[int] = []
    streamed = list(stream_rows(_counting(store, sizes), q, page=40, first_window_ns=3600 * S))
    whole = store.query(q)
    assert streamed == whole and len(whole) == 300
    assert max(sizes) <= 40 and len(sizes) > 1


# -- the commands -------------------------------------------------------------------------------


def test_telemetry_query_csv_streams_past_the_default_limit(
    store: TimeSeriesStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IOT_DATA_DIR", str(tmp_path))
    res = run_iot(monkeypatch, capsys, "telemetry", "query", "--device", "d1", "--since", "3d", "--format", "csv")
    assert res.code == 0, res.err
    rows = list(csv.reader(io.StringIO(res.out)))
    assert rows[0] == ["time", "ts_ns", "n", "t"]
    assert len(rows) == 1 + 6000 + 899  # all of it, not the newest 1000
    first = rows[1]
    assert first[0] == datetime.fromtimestamp(T0 / S, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert first[1] == str(T0) and float(first[2]) == 0 and float(first[3]) == 0
    nd = run_iot(monkeypatch, capsys, "telemetry", "query", "--device", "d1", "--since", "3d", "--format", "ndjson")
    assert len(nd.out.splitlines()) == 6899
    limited = run_iot(monkeypatch, capsys, "telemetry", "query", "--device", "d1", "--since", "3d",
                      "--format", "csv", "--limit", "5")  # fmt: skip
    assert len(limited.out.splitlines()) == 6
    js = run_iot(monkeypatch, capsys, "telemetry", "query", "--device", "d1", "--since", "3d", "--json", "--limit", "3")
    assert [r["ts_ns"] for r in js.json()] == sorted(r["ts_ns"] for r in js.json()) and len(js.json()) == 3
    bad = run_iot(monkeypatch, capsys, "telemetry", "query", "--device", "d1", "--json", "--format", "csv")
    assert bad.code == 2 and "disagree" in bad.err


def test_list_commands_take_every_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IOT_DATA_DIR", str(tmp_path))
    assert run_iot(monkeypatch, capsys, "registry", "migrate").code == 0
    for i in range(3):
        assert run_iot(monkeypatch, capsys, "devices", "add", f"dev-{i}", "--type", "thermo", "--site", "s1").code == 0
    commands = [
        ("devices", "list"),
        ("alerts", "list"),
        ("alerts", "rules", "list"),
        ("alerts", "channels", "list"),
        ("deadletters", "list"),
        ("registry", "audit"),
        ("registry", "keys", "list"),
    ]
    for cmd in commands:
        js = run_iot(monkeypatch, capsys, *cmd, "--json")
        assert js.code == 0, (cmd, js.err)
        same = run_iot(monkeypatch, capsys, *cmd, "--format", "json")
        assert same.out == js.out, cmd
        nd = run_iot(monkeypatch, capsys, *cmd, "--format", "ndjson")
        assert [json.loads(x) for x in nd.out.splitlines()] == json.loads(js.out), cmd
        cs = run_iot(monkeypatch, capsys, *cmd, "--format", "csv")
        assert cs.code == 0, (cmd, cs.err)
        rows = list(csv.DictReader(io.StringIO(cs.out)))
        assert len(rows) == len(js.json()), cmd
        table = run_iot(monkeypatch, capsys, *cmd, "--format", "table")
        assert table.code == 0 and not table.out.lstrip().startswith(("[", "{")), cmd
    devices = list(csv.DictReader(io.StringIO(run_iot(monkeypatch, capsys, "devices", "list", "--format", "csv").out)))
    assert [d["id"] for d in devices] == ["dev-0", "dev-1", "dev-2"]
    assert all(d["created_at"].endswith("Z") and "T" in d["created_at"] for d in devices)
    audit = list(csv.DictReader(io.StringIO(run_iot(monkeypatch, capsys, "registry", "audit", "--format", "csv").out)))
    assert len(audit) == 3 and json.loads(audit[0]["detail"]) is not None
