"""``iot telemetry plot``: one or more devices' fields as a terminal chart, or a PNG."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from core.model import MEASUREMENTS, Kind
from core.stores import AGGREGATES, SeriesQuery
from ingest.stores import timeseries_from
from iot.cli.acting import authorised
from iot.cli.toolkit import fail, parse_every, parse_time, settings
from iot.present.chart import ChartSpec, Series, line_chart
from iot.present.chart_png import PlotUnavailable, write_png

KINDS = [k.value for k in (Kind.TELEMETRY, Kind.METRICS)]
MAX_POINTS = 20_000


def plot(
    device: Annotated[list[str], typer.Option("--device", "-d", help="device id (repeat to overlay)")],
    field: Annotated[list[str], typer.Option("--field", "-f", help="numeric field (repeat to overlay)")],
    kind: Annotated[str, typer.Option(help="telemetry|metrics")] = "telemetry",
    since: Annotated[str, typer.Option(help="how far back, e.g. 6h")] = "1h",
    every: Annotated[str | None, typer.Option(help="bucket width, e.g. 1m (mean per bucket)")] = None,
    agg: Annotated[str, typer.Option(help="mean|min|max|last with --every")] = "mean",
    png: Annotated[Path | None, typer.Option("--png", help="write a PNG here instead (needs the [plot] extra)")] = None,
    width: Annotated[int | None, typer.Option(min=20, help="columns (terminal) or pixels (PNG)")] = None,
    height: Annotated[int | None, typer.Option(min=5, help="rows (terminal) or pixels (PNG)")] = None,
    timeseries: Annotated[str | None, typer.Option("--timeseries", help="store URL")] = None,
    registry: Annotated[str | None, typer.Option("--registry", help="registry URL (for the API key)")] = None,
) -> None:
    """Line chart of fields over time, several fields or devices overlaid."""
    if kind not in KINDS:
        fail(f"invalid --kind {kind!r}: use one of {', '.join(KINDS)}")
    if agg not in AGGREGATES or agg == "count":
        fail(f"invalid --agg {agg!r}: use mean, min, max or last")
    every_s = parse_every(every)
    now = time.time_ns()
    since_ns = parse_time(since, "--since", now)
    s = settings(timeseries_url=timeseries, registry_url=registry)
    for d in device:  # viewers; a site-limited key only devices registered at its sites
        authorised(s, "viewer", "plot telemetry", d)
    store = timeseries_from(s)
    store.connect()
    series: list[Series] = []
    empty: list[str] = []  # "field of device" with no numeric value in range
    try:
        for d in device:
            for f in field:
                q = SeriesQuery(MEASUREMENTS[Kind(kind)], d, since_ns, field=f, every_s=every_s,
                                agg=agg if every_s else None, limit=MAX_POINTS)  # fmt: skip
                try:
                    rows = store.query(q)
                except ValueError as e:
                    fail(str(e).splitlines()[0])
                pts = [(r.ts_ns, float(v)) for r in rows if isinstance(v := r.values.get(f), int | float)]
                label = f if len(device) == 1 else f"{d} {f}" if len(field) > 1 else d
                series.append(Series(label, pts, int(every_s * 10**9) if every_s else None))
                if not pts:
                    empty.append(f"{f} of {d}")
    finally:
        store.close()
    if len(empty) == len(series):
        fail(f"no numeric {', '.join(field)} for {', '.join(device)} since {since}", 1)
    for what in empty:  # drawn without it: say so, or the reader takes the chart for all of them
        typer.echo(f"warning: no numeric {what} since {since}: not drawn", err=True)
    title = f"{', '.join(field)} of {', '.join(device)}" + (f" ({agg} per {every})" if every else "")
    if png is not None:
        try:
            write_png(png, series, title=title, width_px=width or 1200, height_px=height or 600)
        except PlotUnavailable as e:
            fail(str(e))
        typer.echo(f"wrote {png} ({width or 1200}x{height or 600})")
        return
    tty = sys.stdout.isatty()
    cols = width or (min(120, typer.get_terminal_size()[0]) if tty else 100)
    typer.echo(line_chart(series, ChartSpec(title, cols, height or 20, (), tty)), nl=False)
