"""``iot telemetry query``: read one device's time series from the configured store."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from core.config import Settings
from core.model import MEASUREMENTS, Kind
from core.stores import AGGREGATES, Row, SeriesQuery
from core.timefmt import iso_ns
from ingest.stores import timeseries_from
from ingest.stores.export import series_columns, series_records, stream_rows
from iot.cli import output
from iot.cli.acting import authorised
from iot.cli.plot import plot
from iot.cli.toolkit import fail, parse_every, parse_time, print_table, settings

app = typer.Typer(no_args_is_help=True)
app.command("plot")(plot)

KINDS = [k.value for k in MEASUREMENTS]


def run_query(s: Settings, q: SeriesQuery) -> list[Row]:
    store = timeseries_from(s)
    store.connect()
    try:
        return store.query(q)
    finally:
        store.close()


@app.command("query")
def query(
    device: Annotated[str, typer.Option("--device", "-d", help="device id")],
    field: Annotated[str | None, typer.Option(help="only this field")] = None,
    kind: Annotated[str, typer.Option(help="telemetry|metrics|events")] = "telemetry",
    since: Annotated[str, typer.Option(help="start: duration ago (1h) or ISO time")] = "1h",
    until: Annotated[str | None, typer.Option(help="end (exclusive): duration ago or ISO time")] = None,
    every: Annotated[str | None, typer.Option(help="bucket width, e.g. 1m (needs --agg)")] = None,
    agg: Annotated[str | None, typer.Option(help="mean|min|max|last|count (needs --every)")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="newest N rows (default 1000; csv/ndjson: all)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    fmt: output.FormatOpt = None,
    timeseries: Annotated[str | None, typer.Option("--timeseries", help="store URL")] = None,
    registry: Annotated[str | None, typer.Option("--registry", help="registry URL (for the API key)")] = None,
) -> None:
    """Rows (time + one column per field) of one device, oldest first; csv/ndjson stream the range
    (viewers; a site-limited key only devices registered at its sites)."""
    chosen = output.resolve(fmt, as_json)
    if kind not in KINDS:
        fail(f"invalid --kind {kind!r}: use one of {', '.join(KINDS)}")
    if (every is None) != (agg is None):
        fail("--every and --agg go together")
    if agg is not None and agg not in AGGREGATES:
        fail(f"invalid --agg {agg!r}: use one of {', '.join(AGGREGATES)}")
    every_s = parse_every(every)
    now = time.time_ns()
    q = SeriesQuery(
        measurement=MEASUREMENTS[Kind(kind)],
        device_id=device,
        field=field,
        since_ns=parse_time(since, "--since", now),
        until_ns=parse_time(until, "--until", now) if until is not None else None,
        every_s=every_s,
        agg=agg,
        limit=limit or 1000,
    )
    s = settings(timeseries_url=timeseries, registry_url=registry)
    authorised(s, "viewer", "query telemetry", device)
    if chosen in ("csv", "ndjson") and limit is None:
        stream_query(s, q, chosen)
        return
    try:
        rows = run_query(s, q)
    except ValueError as e:  # the query itself is unusable (e.g. too many buckets)
        fail(str(e).splitlines()[0])
    if output.machine(chosen, False, [{"time": iso_ns(r.ts_ns), "ts_ns": r.ts_ns, **r.values} for r in rows]):
        return
    columns: dict[str, None] = {}
    for r in rows:
        columns.update(dict.fromkeys(sorted(r.values)))
    print_table(
        ["time", *columns],
        ([iso_ns(r.ts_ns), *(r.values.get(c) for c in columns)] for r in rows),
        title=f"{q.measurement} {device}" + (f" {agg} per {every}" if agg else ""),
    )


def stream_query(s: Settings, q: SeriesQuery, fmt: str) -> None:
    """The whole range as csv/ndjson, page by page (memory holds one page)."""
    store = timeseries_from(s)
    store.connect()
    try:
        columns = series_columns(store, q) if fmt == "csv" else None
        records = series_records(stream_rows(store.query, q))
        try:
            output.emit(records, fmt, columns)
        except ValueError as e:
            fail(str(e).splitlines()[0])
    finally:
        store.close()
