"""``iot telemetry query``: read the time series of one device, or of the devices of a site or
type, from the configured store."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

import typer

from core.config import Settings
from core.model import MEASUREMENTS, Kind
from core.stores import AGGREGATES, Row, SeriesQuery, TimeSeriesStore
from core.timefmt import iso_ns
from ingest.stores import timeseries_from
from ingest.stores.export import series_columns, series_records, stream_rows
from iot.cli import output
from iot.cli.acting import authorised, reading
from iot.cli.plot import plot
from iot.cli.toolkit import ExitCode, fail, parse_every, parse_time, print_table, settings
from registry import device_queries

app = typer.Typer(no_args_is_help=True)
app.command("plot")(plot)

KINDS = [k.value for k in MEASUREMENTS]


class GroupBy(StrEnum):
    """How a query over several devices (``--site`` / ``--type``) comes out."""

    DEVICE = "device"  # each device's own rows (or windows), with a ``device_id`` column
    NONE = "none"  # one series: every device merged, aggregated per window (needs --every/--agg)


MAX_DEVICES = 500  # devices one --site/--type query may cover
DEVICE_COLUMN = "device_id"  # a reserved field name (ingest.decoding.names): no device field can take its place


@dataclass(frozen=True)
class Selection:
    """The devices a query covers: one named device, or those of a site and/or type in the registry."""

    devices: tuple[str, ...]
    label: str  # for table titles, e.g. "site=A (3 devices)"
    many: bool  # chosen by --site/--type (output has a device column, or is merged)


def select_devices(s: Settings, device: str | None, site: str | None, type: str | None) -> Selection:
    """Check the API key and resolve the devices: ``--device`` alone, or ``--site``/``--type``
    from the registry within the key's sites (a site outside them: refused, exit 3)."""
    if device is not None:
        if site is not None or type is not None:
            fail("--device goes alone: use --site / --type (without --device) to query several devices")
        authorised(s, "viewer", "query telemetry", device)
        return Selection((device,), device, False)
    if site is None and type is None:
        fail("give --device D, or --site S and/or --type T for the devices there")
    with reading(s) as (db, actor):
        ids = tuple(d.id for d in device_queries.list_devices(db, actor, None, type, site))
    what = " ".join(f"{k}={v}" for k, v in (("site", site), ("type", type)) if v is not None)
    if not ids:
        fail(f"no devices with {what} in the registry (that this API key may see)", ExitCode.FAILED)
    if len(ids) > MAX_DEVICES:
        fail(f"{len(ids)} devices with {what}: at most {MAX_DEVICES} per query (narrow it with --site and --type)")
    return Selection(ids, f"{what} ({len(ids)} devices)", True)


@app.command("query")
def query(
    device: Annotated[str | None, typer.Option("--device", "-d", help="device id")] = None,
    site: Annotated[str | None, typer.Option("--site", help="every device of this site (registry)")] = None,
    type: Annotated[str | None, typer.Option("--type", help="every device of this type (registry)")] = None,
    group_by: Annotated[
        GroupBy, typer.Option("--group-by", help="with --site/--type: per device, or none (merged, needs --agg)")
    ] = GroupBy.DEVICE,
    field: Annotated[str | None, typer.Option(help="only this field")] = None,
    kind: Annotated[str, typer.Option(help="telemetry|metrics|events")] = "telemetry",
    since: Annotated[str, typer.Option(help="start: duration ago (1h) or ISO time")] = "1h",
    until: Annotated[str | None, typer.Option(help="end (exclusive): duration ago or ISO time")] = None,
    every: Annotated[str | None, typer.Option(help="bucket width, e.g. 1m (needs --agg)")] = None,
    agg: Annotated[str | None, typer.Option(help="mean|min|max|last|count (needs --every)")] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="newest N rows, per device (default 1000; csv/ndjson: all)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    fmt: output.FormatOpt = None,
    timeseries: Annotated[str | None, typer.Option("--timeseries", help="store URL")] = None,
    registry: Annotated[str | None, typer.Option("--registry", help="registry URL (for the API key)")] = None,
) -> None:
    """Rows (time + one column per field) of one device, or of the devices of a site / type (with a
    device_id column, or merged with --group-by none), oldest first; csv/ndjson stream the range
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
    since_ns = parse_time(since, "--since", now)
    until_ns = parse_time(until, "--until", now) if until is not None else None
    s = settings(timeseries_url=timeseries, registry_url=registry)
    chosen_devices = select_devices(s, device, site, type)
    merged = chosen_devices.many and group_by is GroupBy.NONE
    if merged and agg is None:
        fail("--group-by none merges the devices per window: give --every and --agg")
    per_device = chosen_devices.many and not merged
    targets: list[str | tuple[str, ...]] = (
        list(chosen_devices.devices)
        if per_device
        else [chosen_devices.devices if merged else chosen_devices.devices[0]]
    )
    queries = [
        SeriesQuery(
            measurement=MEASUREMENTS[Kind(kind)],
            device_id=target,
            field=field,
            since_ns=since_ns,
            until_ns=until_ns,
            every_s=every_s,
            agg=agg,
            limit=limit or 1000,
        )
        for target in targets
    ]
    if chosen in ("csv", "ndjson") and limit is None:
        stream_query(s, queries, chosen, per_device)
        return
    try:
        results = run_queries(s, queries)
    except ValueError as e:  # the query itself is unusable (e.g. too many buckets)
        fail(str(e).splitlines()[0])
    if isinstance(results, Missing):
        fail(results.why, ExitCode.FAILED)
    records = [
        {"time": iso_ns(r.ts_ns), "ts_ns": r.ts_ns, **({DEVICE_COLUMN: q.device_id} if per_device else {}), **r.values}
        for q, rows in zip(queries, results, strict=True)
        for r in rows
    ]
    columns: dict[str, None] = {}
    for q_rows in results:
        for r in q_rows:
            columns.update(dict.fromkeys(sorted(r.values)))
    if field is not None:
        columns = {field: None}
    head = ["time", *([DEVICE_COLUMN] if per_device else []), *columns]
    if output.machine(chosen, False, records, ["time", "ts_ns", *head[1:]]):
        return
    print_table(
        head,
        ([rec["time"], *(rec.get(c) for c in head[1:])] for rec in records),
        title=f"{queries[0].measurement} {chosen_devices.label}" + (f" {agg} per {every}" if agg else ""),
    )


@dataclass(frozen=True)
class Missing:
    """Why a query has no rows whatever its range: nothing stored for its devices, or no such field."""

    why: str


def missing(store: TimeSeriesStore, queries: list[SeriesQuery]) -> Missing | None:
    """A :class:`Missing` when no device of ``queries`` has anything in their measurement (an
    unknown device, a wrong store or database) or none has the field asked for; else None."""
    devices = [d for q in queries for d in q.devices]
    measurement, field = queries[0].measurement, queries[0].field
    stored = {d: store.latest(measurement, d) for d in devices}
    who = f"device {devices[0]!r}" if len(devices) == 1 else f"any of the {len(devices)} devices"
    if not any(stored.values()):
        return Missing(f"no {measurement} stored for {who} in {store!r}")
    fields = sorted({f for known in stored.values() for f in known})
    if field is not None and field not in fields:
        shown = ", ".join(fields[:20]) + (", ..." if len(fields) > 20 else "")
        return Missing(f"no field {field!r} in the {measurement} of {who} (fields: {shown})")
    return None


def run_queries(s: Settings, queries: list[SeriesQuery]) -> list[list[Row]] | Missing:
    """Each query's rows; when all are empty, :func:`missing` says whether that hides a mistake."""
    store = timeseries_from(s)
    store.connect()
    try:
        results = [store.query(q) for q in queries]
        return (missing(store, queries) or results) if not any(results) else results
    finally:
        store.close()


def stream_query(s: Settings, queries: list[SeriesQuery], fmt: str, per_device: bool) -> None:
    """The whole range as csv/ndjson, page by page (memory holds one page); per device, one
    device after another."""
    store = timeseries_from(s)
    store.connect()
    try:
        if (why := missing(store, queries)) is not None:
            fail(why.why, ExitCode.FAILED)
        columns = None
        if fmt == "csv":
            fields = sorted({c for q in queries for c in series_columns(store, q)[2:]})
            columns = ["time", "ts_ns", *([DEVICE_COLUMN] if per_device else []), *fields]

        def records() -> Iterator[dict[str, object]]:
            for q in queries:
                for rec in series_records(stream_rows(store.query, q)):
                    yield (
                        {"time": rec["time"], "ts_ns": rec["ts_ns"], DEVICE_COLUMN: q.device_id, **rec}
                        if per_device
                        else rec
                    )

        try:
            output.emit(records(), fmt, columns)
        except ValueError as e:
            fail(str(e).splitlines()[0])
    finally:
        store.close()
