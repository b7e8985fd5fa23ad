"""Pictures of a signal for the terminal: a line chart (plotext) and a one-line sparkline. Pure.

Both take typed :class:`Series` (time in ns, numeric values) and return text, so the CLI prints it
and tests read it. The chart's y axis is labelled with the data's own minimum and maximum, so the
range a reader sees is the range the data has. A line is broken where data is missing (a step over
1.5 buckets with ``--every``, else over :data:`GAP_FACTOR` times the series' median step), never
drawn straight across the gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from statistics import median

SPARK = "▁▂▃▄▅▆▇█"
GAP_FACTOR = 3  # without a bucket width: a step this many times the median step is a gap
COLORS = ("blue", "orange", "green", "red", "magenta", "cyan")

Points = Sequence[tuple[int, float]]


@dataclass(frozen=True)
class Series:
    """One line: ``label`` and points ``(ts_ns, value)``, oldest first; ``step_ns`` the spacing
    expected (the bucket width of an aggregated query), else inferred from the points."""

    label: str
    points: Points
    step_ns: int | None = None

    @property
    def values(self) -> list[float]:
        return [v for _, v in self.points]

    def runs(self) -> list[Points]:
        """The points cut where data is missing, so no line is drawn across a gap."""
        pts = self.points
        if len(pts) < 2:
            return [pts] if pts else []
        if self.step_ns:
            limit = 1.5 * self.step_ns
        elif len(pts) >= 3:
            limit = GAP_FACTOR * median(b[0] - a[0] for a, b in pairwise(pts))
        else:
            return [pts]
        out: list[list[tuple[int, float]]] = [[pts[0]]]
        for prev, p in pairwise(pts):
            if p[0] - prev[0] > limit:
                out.append([])
            out[-1].append(p)
        return list(out)


@dataclass(frozen=True)
class Mark:
    """A vertical marker at ``ts_ns`` (e.g. when an alert opened), named in the legend line."""

    ts_ns: int
    label: str


@dataclass(frozen=True)
class ChartSpec:
    title: str = ""
    width: int = 80
    height: int = 16
    marks: Sequence[Mark] = field(default_factory=tuple)
    color: bool = False


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def _clock(ts_ns: int, with_date: bool, span_ns: int = 10**10) -> str:
    t = datetime.fromtimestamp(ts_ns / 1e9, UTC)
    if with_date:
        return t.strftime("%Y-%m-%d %H:%M")
    return t.strftime("%H:%M:%S.%f")[:10] if span_ns < 10 * 10**9 else t.strftime("%H:%M:%S")


def line_chart(series: Sequence[Series], spec: ChartSpec = ChartSpec()) -> str:
    """Several series overlaid on one time axis (UTC); empty input gives a one-line note."""
    import plotext as plt

    drawn = [s for s in series if s.points]
    if not drawn:
        return f"{spec.title}: no data in range\n" if spec.title else "no data in range\n"
    t_min = min(s.points[0][0] for s in drawn)
    t_max = max(s.points[-1][0] for s in drawn)
    span = max(t_max - t_min, 1)
    with_date = span >= 86_400 * 10**9
    plt.clear_figure()
    plt.plotsize(spec.width, spec.height)
    plt.theme("pro" if spec.color else "clear")
    for i, s in enumerate(drawn):
        color = COLORS[i % len(COLORS)]
        for n, run in enumerate(s.runs()):  # one line per run of data: none across a gap
            at, vs = [(t - t_min) / 1e9 for t, _ in run], [v for _, v in run]
            plt.plot(at, vs, label=s.label if n == 0 else None, marker="braille", color=color)
    xs = [t_min + span * i // 4 for i in range(5)]
    plt.xticks([(t - t_min) / 1e9 for t in xs], [_clock(t, with_date, span) for t in xs])
    lo = min(min(s.values) for s in drawn)
    hi = max(max(s.values) for s in drawn)
    ticks = [lo, hi] if lo == hi else [lo, (lo + hi) / 2, hi]
    plt.yticks(ticks, [_fmt(v) for v in ticks])
    for m in spec.marks:
        if t_min <= m.ts_ns <= t_max:
            plt.vertical_line((m.ts_ns - t_min) / 1e9, color="red" if spec.color else None)
    title = spec.title + ("  UTC" if spec.title else "UTC")
    plt.title(title)
    text = str(plt.build())
    if not spec.color:
        text = plt.uncolorize(text)
    lines = [ln.rstrip() for ln in text.splitlines()]
    for m in spec.marks:
        lines.append(f"  │ {datetime.fromtimestamp(m.ts_ns / 1e9, UTC):%Y-%m-%d %H:%M:%S} UTC  {m.label}")
    return "\n".join(lines) + "\n"


def sparkline(values: Sequence[float], width: int = 24) -> str:
    """``values`` squeezed into ``width`` block characters (bucket means), lowest ▁ to highest █."""
    if not values:
        return ""
    if len(values) > width:
        buckets = [values[i * len(values) // width : (i + 1) * len(values) // width] for i in range(width)]
        values = [sum(b) / len(b) for b in buckets if b]
    lo, hi = min(values), max(values)
    if hi == lo:
        return SPARK[len(SPARK) // 2] * len(values)
    top = len(SPARK) - 1
    return "".join(SPARK[round((v - lo) / (hi - lo) * top)] for v in values)
