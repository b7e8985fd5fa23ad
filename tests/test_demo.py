"""`iot demo`: complete on short runs under CPU load, a provisioned fleet, a chart and next steps."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.model import Reason
from iot.cli.toolkit import settings
from iot.demo import DemoProgress, handled_messages, run_demo
from iot.present.chart import ChartSpec, Mark, Series, line_chart, sparkline
from simulators.profiles import PROFILES
from tests.cli_runner import run_iot

BUSY = "import time\nwhile True:\n    pass\n"


@pytest.fixture
def cpu_load() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Two busy-loop processes (this machine has two cores): the demo must still be exact."""
    procs = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(2)]
    yield procs
    for p in procs:
        p.kill()
        p.wait(10)


def test_handled_counts_each_delivery_once() -> None:
    counts = {
        ("sensor_readings", "received"): 7,
        ("device_configs", "received"): 2,
        ("status", "received"): 1,
        (str(Reason.INVALID_JSON), "dead_lettered"): 3,
        (str(Reason.STORE_REJECTED), "dead_lettered"): 2,  # already counted as received
    }
    assert handled_messages(counts) == 13


@pytest.mark.parametrize("run", range(3))
def test_short_demo_is_complete_under_cpu_load(
    tmp_path: Path, cpu_load: list[subprocess.Popen[bytes]], run: int
) -> None:
    seen: list[DemoProgress] = []
    r = run_demo(settings(data_dir=tmp_path), duration=3, devices=2, rate=5, seed=run + 1, progress=seen.append)
    assert all(p.poll() is None for p in cpu_load), "the load ran throughout"
    assert r.settled, (r.handled_messages, r.expected_messages)
    assert r.handled_messages == r.expected_messages > 0
    assert r.sent == r.stored
    assert r.dead_lettered == r.malformed_sent
    assert r.complete
    assert seen and seen[-1].received == r.handled_messages
    assert seen[-1].written["timeseries"] >= r.stored["telemetry"] // 4  # points, not readings


def test_demo_provisions_types_and_sites_and_plots_temperature(tmp_path: Path) -> None:
    r = run_demo(settings(data_dir=tmp_path), duration=3, devices=4, rate=5, seed=3)
    assert r.complete
    assert sum(r.fleet.values()) == 4
    assert not any(k.startswith("unknown") for k in r.fleet)
    assert {k.split(" @ ")[0] for k in r.fleet} == set(PROFILES)
    h = r.highlight
    assert h is not None and h.field == "temperature" and h.device_type in ("thermostat", "air_quality")
    assert h.site is not None and len(h.points) >= 5


def test_demo_cli_shows_chart_and_next_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IOT_DATA_DIR", str(tmp_path))
    res = run_iot(monkeypatch, capsys, "demo", "--duration", "3", "--devices", "2")
    assert res.code == 0, res.err
    assert "provisioned fleet" in res.out and "thermostat @ plant-north" in res.out
    assert "temperature of sim-0000" in res.out
    assert f"IOT_DATA_DIR={tmp_path / 'demo'} iot devices show sim-0000" in res.out
    assert "MISMATCH" not in res.out


def test_chart_labels_the_data_range() -> None:
    t0 = 1_764_028_800 * 10**9
    pts = [(t0 + i * 10**9, v) for i, v in enumerate([20.25, 21.5, 23.75, 22.0])]
    text = line_chart([Series("temperature", pts)], ChartSpec("t", 70, 12, [Mark(t0 + 2 * 10**9, "alert #1")]))
    assert "20.25" in text and "23.75" in text
    assert "00:00:00" in text and "alert #1" in text
    assert "\x1b[" not in text


def test_chart_without_data_says_so() -> None:
    assert "no data" in line_chart([Series("x", [])], ChartSpec("x"))


def test_sparkline_spans_lowest_to_highest() -> None:
    s = sparkline([1.0, 2.0, 3.0, 4.0, 5.0])
    assert s[0] == "▁" and s[-1] == "█" and len(s) == 5
    assert len(sparkline([float(i) for i in range(100)], width=10)) == 10
    assert sparkline([]) == ""
