"""The same chart as a PNG file, with matplotlib (the optional ``[plot]`` extra). File I/O only."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC
from pathlib import Path

from iot.present.chart import Mark, Series


def _days(ts_ns: int) -> float:
    """matplotlib's date number: days since its epoch, 1970-01-01 UTC."""
    return ts_ns / 86_400e9


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


def write_png(
    path: Path,
    series: Sequence[Series],
    *,
    title: str = "",
    width_px: int = 1200,
    height_px: int = 600,
    marks: Sequence[Mark] = (),
    dpi: int = 100,
) -> Path:
    """Draw ``series`` over UTC time into ``path`` at exactly ``width_px`` x ``height_px``."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.dates as mdates
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable("--png needs matplotlib: pip install 'polyglot-iot[plot]'") from None
    fig, ax = plt.subplots(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    try:
        for s in series:
            if s.points:
                xs: list[float] = []
                ys: list[float] = []
                for run in s.runs():  # NaN between runs: matplotlib breaks the line there
                    if xs:
                        xs.append(math.nan)
                        ys.append(math.nan)
                    xs += [_days(t) for t, _ in run]
                    ys += [v for _, v in run]
                ax.plot(xs, ys, label=s.label, linewidth=1.2)
        for m in marks:
            at = _days(m.ts_ns)
            ax.axvline(at, color="red", linestyle="--", linewidth=1)
            ax.annotate(m.label[:40], (at, 1), xycoords=("data", "axes fraction"),
                        rotation=90, va="top", ha="right", fontsize=7, color="red")  # fmt: skip
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz=UTC))  # type: ignore[no-untyped-call]
        ax.set_xlabel("time (UTC)")
        ax.grid(True, alpha=0.3)
        if title:
            ax.set_title(title)
        if any(s.points for s in series):
            ax.legend(loc="best", fontsize=8)
        fig.autofmt_xdate()
        fig.savefig(path, dpi=dpi, format="png")
    finally:
        plt.close(fig)
    return path
