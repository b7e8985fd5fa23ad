"""``iot telemetry query`` against the embedded store and a real influxd."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.model import Point
from ingest.stores import open_timeseries
from iot.cli import app
from tests.cli_runner import Result
from tests.cli_runner import run_iot as cli_run
from tests.servers import free_port

S = 10**9
T0 = (time.time_ns() // (60 * S)) * 60 * S - 600 * S
IOT = [sys.executable, "-c", "from iot.cli import main; main()"]


def seed(url: str, data_dir: Path) -> None:
    store = open_timeseries(url, data_dir=data_dir)
    store.connect()
    points = [
        Point("sensor_readings", "dev-7", {"temperature": 20.5 + i, "door": "open"}, T0 + i * 10 * S) for i in range(6)
    ]
    points.append(Point("device_metrics", "dev-7", {"battery": 87.25}, T0))
    assert store.write(points) == []
    store.close()


def invoke(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["telemetry", "query", *args], env={"COLUMNS": "200", **env})
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(params=["embedded", pytest.param("influxdb1", marks=pytest.mark.influxd)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = "embedded" if request.param == "embedded" else request.getfixturevalue("influxdb1_url")
    seed(url, tmp_path)
    return url


def test_table_and_json(store_url: str, tmp_path: Path) -> None:
    env = {"IOT_DATA_DIR": str(tmp_path), "IOT_TIMESERIES_URL": store_url}
    code, out, _ = invoke("--device", "dev-7", "--since", "1h", env=env)
    assert code == 0
    assert "temperature" in out and "door" in out and "25.5" in out and "20.5" in out
    code, out, _ = invoke("-d", "dev-7", "--json", "--limit", "2", "--field", "temperature", env=env)
    assert code == 0
    rows = json.loads(out)
    assert [(r["ts_ns"], r["temperature"]) for r in rows] == [(T0 + 40 * S, 24.5), (T0 + 50 * S, 25.5)]
    assert all("door" not in r and r["time"].endswith("Z") for r in rows)
    code, out, _ = invoke("-d", "dev-7", "--kind", "metrics", "--json", env=env)
    assert code == 0 and [r["battery"] for r in json.loads(out)] == [87.25]


def test_aggregated_via_flag(store_url: str, tmp_path: Path) -> None:
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(T0 // S + 60))
    code, out, _ = invoke(
        "-d",
        "dev-7",
        "--timeseries",
        store_url,
        "--since",
        "1h",
        "--until",
        until,
        "--every",
        "1m",
        "--agg",
        "max",
        "--json",
        env={"IOT_DATA_DIR": str(tmp_path)},
    )
    assert code == 0, out
    assert [(r["ts_ns"], r["temperature"]) for r in json.loads(out)] == [(T0, 25.5)]


def run_iot(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOT_")}
    env["IOT_DATA_DIR"] = str(tmp_path)
    return subprocess.run(
        [*IOT, "telemetry", "query", *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-d", "x", "--every", "1m"], "--every and --agg go together"),
        (["-d", "x", "--agg", "mean"], "--every and --agg go together"),
        (["-d", "x", "--every", "1m", "--agg", "median"], "invalid --agg"),
        (["-d", "x", "--since", "yesterday"], "invalid --since"),
        (["-d", "x", "--kind", "config"], "invalid --kind"),
        (["-d", "x", "--since", "3650d", "--every", "1s", "--agg", "mean"], "buckets"),
        (["-d", "x", "--timeseries", "nosuch://h"], "unsupported time-series URL scheme"),
    ],
)
def test_user_mistakes_are_one_line_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    done = run_iot(*args, tmp_path=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_unreachable_store_is_one_line_exit_1(tmp_path: Path) -> None:
    done = run_iot("-d", "x", "--timeseries", f"influxdb1://127.0.0.1:{free_port()}/db", tmp_path=tmp_path)
    assert done.returncode == 1
    assert "StoreUnavailable" in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.fixture
def query_iot(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """`iot telemetry query ARGS...` through the real entry point (errors as printed), with ``env`` set."""

    def run(*args: str, env: dict[str, str]) -> Result:
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        return cli_run(monkeypatch, capsys, "telemetry", "query", *args)

    return run


@pytest.mark.parametrize("fmt", ["table", "csv"])
def test_an_unknown_device_or_field_is_one_line_exit_1(
    store_url: str, tmp_path: Path, fmt: str, query_iot: Callable[..., Result]
) -> None:
    """Not an empty table with exit 0: the device has nothing stored, or the field is not one of its fields."""
    env = {"IOT_DATA_DIR": str(tmp_path), "IOT_TIMESERIES_URL": store_url}
    r = query_iot("-d", "dev-8", "--format", fmt, env=env)
    assert r.code == 1 and r.err.startswith("error: no sensor_readings stored for device 'dev-8' in ")
    assert len(r.err.strip().splitlines()) == 1
    r = query_iot("-d", "dev-7", "--field", "temprature", "--format", fmt, env=env)
    assert r.code == 1 and len(r.err.strip().splitlines()) == 1
    assert "no field 'temprature' in the sensor_readings of device 'dev-7' (fields: door, temperature)" in r.err
    r = query_iot("-d", "dev-7", "--since", "10d", "--until", "9d", "--format", fmt, env=env)
    assert r.code == 0, r.err  # a known device and field with nothing in this range: an empty answer is the truth
    if fmt == "csv":
        assert r.out.splitlines() == ["time,ts_ns,door,temperature"]


@pytest.mark.influxd
def test_a_missing_database_is_named(influxdb1_url: str, tmp_path: Path, query_iot: Callable[..., Result]) -> None:
    seed(influxdb1_url, tmp_path)
    other = influxdb1_url.rsplit("/", 1)[0] + "/nosuchdb"
    r = query_iot("-d", "dev-7", "--timeseries", other, env={"IOT_DATA_DIR": str(tmp_path)})
    assert r.code == 1 and "no sensor_readings stored for device 'dev-7'" in r.err and "/nosuchdb)" in r.err
