"""``iot telemetry query --site S / --type T``: the devices come from the registry within the API key's
sites, per device (``device_id`` column) or merged per window — on the embedded store and a real influxd."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import pytest

from core.model import Point
from ingest.stores import open_timeseries
from tests.keyed_cli import Iot, add_key, denied, make_iot

S = 10**9
T0 = (time.time_ns() // (60 * S)) * 60 * S - 600 * S
# device -> (site, type, temperatures at T0, T0+10s, T0+20s)
FLEET = {
    "a1": ("A", "thermo", [10.0, 20.0, 30.0]),
    "a2": ("A", "meter", [50.0, 70.0, 90.0]),
    "b1": ("B", "thermo", [1000.0, 1000.0, 1000.0]),
}


def _seed(url: str, data_dir: Path) -> None:
    store = open_timeseries(url, data_dir=data_dir)
    store.connect()
    points = [
        Point("sensor_readings", device, {"temperature": v}, T0 + i * 10 * S)
        for device, (_, _, values) in FLEET.items()
        for i, v in enumerate(values)
    ]
    assert store.write(points) == []
    store.close()


@pytest.fixture(params=["embedded", pytest.param("influxdb1", marks=pytest.mark.influxd)])
def iot(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> Iot:
    url = "embedded" if request.param == "embedded" else str(request.getfixturevalue("influxdb1_url"))
    run = make_iot(monkeypatch, capsys, tmp_path, f"sqlite:///{tmp_path / 'data' / 'registry.sqlite3'}")
    monkeypatch.setenv("IOT_TIMESERIES_URL", url)
    assert run("registry", "migrate").code == 0
    for device, (site, type_, _) in FLEET.items():
        assert run("devices", "add", device, "--site", site, "--type", type_).code == 0
    _seed(url, tmp_path / "data")
    return run


def _rows(iot: Iot, *args: str, key: str | None = None) -> list[dict[str, object]]:
    r = iot("telemetry", "query", "--since", "1h", *args, "--json", key=key)
    assert r.code == 0, r.err
    rows: list[dict[str, object]] = r.json()
    return rows


def test_a_site_per_device_and_merged(iot: Iot) -> None:
    rows = _rows(iot, "--site", "A")
    got = sorted((r["device_id"], r["ts_ns"], r["temperature"]) for r in rows)
    assert got == sorted(
        (d, T0 + i * 10 * S, v) for d in ("a1", "a2") for i, v in enumerate(FLEET[d][2])
    )  # b1 (site B) is not there

    per_device = _rows(iot, "--site", "A", "--every", "1m", "--agg", "max")
    assert sorted((r["device_id"], r["temperature"]) for r in per_device) == [("a1", 30.0), ("a2", 90.0)]

    merged = _rows(iot, "--site", "A", "--group-by", "none", "--every", "1m", "--agg", "mean")
    assert [(r["ts_ns"], r["temperature"]) for r in merged] == [(T0, 45.0)]  # mean of all six values
    assert "device_id" not in merged[0]
    counted = _rows(iot, "--site", "A", "--group-by", "none", "--every", "1m", "--agg", "count")
    assert [r["temperature"] for r in counted] == [6]


def test_a_type_across_sites_and_csv_streams_with_a_device_column(iot: Iot) -> None:
    merged = _rows(iot, "--type", "thermo", "--group-by", "none", "--every", "1m", "--agg", "min")
    assert [r["temperature"] for r in merged] == [10.0]
    both = _rows(iot, "--type", "thermo", "--site", "B")
    assert {r["device_id"] for r in both} == {"b1"}

    r = iot("telemetry", "query", "--type", "thermo", "--since", "1h", "--format", "csv")
    assert r.code == 0, r.err
    table = list(csv.DictReader(io.StringIO(r.out)))
    assert list(table[0]) == ["time", "ts_ns", "device_id", "temperature"]
    assert sorted((t["device_id"], float(t["temperature"])) for t in table) == sorted(
        (d, v) for d in ("a1", "b1") for v in FLEET[d][2]
    )


def test_the_api_keys_sites_limit_the_devices(iot: Iot) -> None:
    root = add_key(iot, None, "--name", "root", "--role", "admin")
    viewer_a = add_key(iot, root, "--name", "viewerA", "--role", "viewer", "--site", "A")
    denied(iot("telemetry", "query", "--site", "B", key=viewer_a))
    rows = _rows(iot, "--type", "thermo", key=viewer_a)
    assert {r["device_id"] for r in rows} == {"a1"}  # b1 is at site B


@pytest.mark.parametrize(
    "args, code, message",
    [
        (("--site", "A", "--group-by", "none"), 2, "--group-by none merges the devices per window"),
        (("--site", "A", "--device", "a1"), 2, "--device goes alone"),
        ((), 2, "give --device D, or --site S"),
        (("--site", "nowhere"), 1, "no devices with site=nowhere"),
    ],
)
def test_mistakes_are_one_line(iot: Iot, args: tuple[str, ...], code: int, message: str) -> None:
    r = iot("telemetry", "query", *args)
    assert r.code == code, (r.code, r.out, r.err)
    assert message in r.err and len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
