"""``iot telemetry plot`` (terminal and PNG) and the sparklines of ``iot devices show``."""

from __future__ import annotations

import math
import struct
import time
from pathlib import Path

import pytest

from core.model import Point
from ingest.stores import open_timeseries
from iot.present.chart import SPARK, ChartSpec, Series, line_chart
from iot.present.chart_png import write_png
from tests.cli_runner import run_iot

S = 10**9
T0 = time.time_ns() - 1800 * S


def seed(data_dir: Path) -> tuple[float, float]:
    store = open_timeseries("embedded", data_dir=data_dir)
    store.connect()
    points = []
    values = []
    for i in range(240):
        v = round(21 + 3 * math.sin(i / 20), 2)
        values.append(v)
        points.append(Point("sensor_readings", "d1", {"temperature": v, "humidity": 40.0 + i / 10}, T0 + i * 5 * S))
        points.append(Point("sensor_readings", "d2", {"temperature": v - 5}, T0 + i * 5 * S))
    assert store.write(points) == []
    store.close()
    return min(values), max(values)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[float, float]:
    monkeypatch.setenv("IOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("IOT_TIMESERIES_URL", "embedded")
    return seed(tmp_path)


def test_terminal_chart_shows_the_data_range(
    env: tuple[float, float], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lo, hi = env
    res = run_iot(monkeypatch, capsys, "telemetry", "plot", "--device", "d1", "--field", "temperature")
    assert res.code == 0, res.err
    assert f"{lo:.6g}" in res.out and f"{hi:.6g}" in res.out
    assert "temperature of d1" in res.out and "\x1b[" not in res.out
    assert any(ch in res.out for ch in "⠁⠂⠄⡀⢀⠈⠐⠠"), "a braille line was drawn"


def test_overlay_of_two_devices_spans_both(
    env: tuple[float, float], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _lo, hi = env
    res = run_iot(monkeypatch, capsys, "telemetry", "plot", "-d", "d1", "-d", "d2", "-f", "temperature",
                  "--every", "1m", "--width", "90", "--height", "18")  # fmt: skip
    assert res.code == 0, res.err
    assert "d1" in res.out and "d2" in res.out and "mean per 1m" in res.out
    first_y_label = next(line for line in res.out.splitlines() if "┤" in line).split("┤")[0].strip()
    assert float(first_y_label) <= hi and float(first_y_label) > hi - 1  # bucket means of d1 at the top
    assert max(len(line) for line in res.out.splitlines()) <= 90 + 2


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", data[16:24])
    return w, h


def test_png_has_the_size_asked_and_is_not_blank(
    env: tuple[float, float], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib", reason="--png needs the [plot] extra")
    import matplotlib.image as mpimg

    out = tmp_path / "chart.png"
    res = run_iot(monkeypatch, capsys, "telemetry", "plot", "-d", "d1", "-f", "temperature", "-f", "humidity",
                  "--png", str(out), "--width", "800", "--height", "400")  # fmt: skip
    assert res.code == 0, res.err
    assert out.exists() and _png_size(out) == (800, 400)
    pixels = mpimg.imread(str(out))
    assert pixels.shape[:2] == (400, 800)
    rgb = pixels[:, :, :3]
    not_white = (rgb < 0.95).any(axis=2).mean()
    assert 0.005 < not_white < 0.5, f"{not_white:.3%} of pixels drawn"
    colours = {tuple(round(float(c), 1) for c in px) for px in rgb.reshape(-1, 3)[::7]}
    assert len(colours) > 3, "lines in more than one colour, not a blank or single-colour image"


def test_no_data_is_one_line_and_exit_1(
    env: tuple[float, float], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    res = run_iot(monkeypatch, capsys, "telemetry", "plot", "-d", "nope", "-f", "temperature")
    assert res.code == 1 and res.err.startswith("error: no numeric temperature for nope")
    assert len(res.err.splitlines()) == 1


def test_devices_show_has_a_sparkline_per_field(
    env: tuple[float, float], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_iot(monkeypatch, capsys, "registry", "migrate").code == 0
    assert run_iot(monkeypatch, capsys, "devices", "add", "d1", "--type", "thermo").code == 0
    res = run_iot(monkeypatch, capsys, "devices", "show", "d1")
    assert res.code == 0, res.err
    lines = {ln.split()[0]: ln for ln in res.out.splitlines() if ln.startswith("  ")}
    for field in ("temperature", "humidity"):
        assert "(last hour)" in lines[field]
        spark = lines[field].split("  ")[-1].split(" (last hour)")[0]
        assert len(spark) >= 8 and set(spark) <= set(SPARK)  # 20 minutes of data in 150 s buckets
    humidity = lines["humidity"].split("  ")[-1].split(" (last hour)")[0]
    assert humidity[0] == SPARK[0] and humidity[-1] == SPARK[-1]  # rising steadily: lowest to highest


def test_a_series_without_data_is_warned_not_dropped_silently(
    env: tuple[float, float], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    res = run_iot(monkeypatch, capsys, "telemetry", "plot", "-d", "d1", "-d", "d2", "-f", "temperature",
                  "-f", "humidity")  # fmt: skip
    assert res.code == 0, res.err
    assert res.err == "warning: no numeric humidity of d2 since 1h: not drawn\n"  # d2 has no humidity
    assert "d1 humidity" in res.out and "d2 temperature" in res.out


GAPPED = [(i * 5 * S, 20.0) for i in range(12)] + [(900 * S + i * 5 * S, 20.0) for i in range(12)]


@pytest.mark.parametrize(
    ("series", "runs"),
    [
        (Series("t", GAPPED), [12, 12]),  # a 15-minute hole in 5 s data
        (Series("t", [(i * 5 * S, 1.0) for i in range(30)]), [30]),  # regular: one line
        (Series("t", [(0, 1.0), (60 * S, 1.0), (200 * S, 1.0)], step_ns=60 * S), [2, 1]),  # a missing bucket
        (Series("t", [(0, 1.0), (60 * S, 1.0)]), [2]),  # too few points to call anything a gap
    ],
)
def test_runs_cut_at_gaps(series: Series, runs: list[int]) -> None:
    assert [len(r) for r in series.runs()] == runs


def test_the_terminal_line_is_broken_at_a_gap() -> None:
    """A flat series with a hole in the middle of the time axis: nothing drawn across the hole."""
    text = line_chart([Series("t", GAPPED)], ChartSpec("gap", 80, 12))
    [row] = [line for line in text.splitlines() if line.startswith("20┤")]
    plot = row[3:-1]
    assert plot[:4].strip("⣀") == "" and plot[-4:].strip("⣀") == ""  # the data either side
    assert plot[len(plot) // 4 : 3 * len(plot) // 4].strip() == ""  # the hole


def test_the_png_line_is_broken_at_a_gap(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="--png needs the [plot] extra")
    import matplotlib.image as mpimg

    out = write_png(tmp_path / "gap.png", [Series("t", GAPPED)], width_px=800, height_px=400)
    rgb = mpimg.imread(str(out))[:, :, :3]
    blue = rgb[:, :, 2] - rgb[:, :, 0] > 0.2  # matplotlib's first line colour (the rest is grey or white)
    columns = blue.any(axis=0).nonzero()[0]
    assert len(columns) > 0
    left, right = columns.min(), columns.max()
    middle = blue[:, left + (right - left) // 4 : right - (right - left) // 4]
    assert not middle.any(), "a line drawn across the gap"
