"""``iot timeseries retention show|set``: how long the time-series store keeps data."""

from __future__ import annotations

from typing import Annotated

import typer

from ingest.stores import timeseries_from
from ingest.stores.retention import (
    DownsampleInfo,
    Downsampling,
    Retention,
    RetentionInfo,
    human,
    parse_every,
    parse_retention,
)
from iot.cli.acting import acting
from iot.cli.toolkit import emit_json, fail, settings
from registry.auth import require

app = typer.Typer(no_args_is_help=True, help="The time-series store.")
retention_app = typer.Typer(no_args_is_help=True, help="How long time-series data is kept.")
app.add_typer(retention_app, name="retention")
downsample_app = typer.Typer(no_args_is_help=True, help="Means of old data per interval, kept apart from raw data.")
app.add_typer(downsample_app, name="downsample")

StoreOpt = Annotated[str | None, typer.Option("--timeseries", help="store URL (env IOT_TIMESERIES_URL)")]


def _require(role: str, action: str, registry: str | None) -> None:
    """The actor behind IOT_API_KEY must have ``role`` (the registry holds the keys)."""
    with acting(settings(registry_url=registry)) as (_, actor):
        require(actor, role, action)


def _run(timeseries: str | None, seconds: int | None, change: bool) -> RetentionInfo:
    s = settings(timeseries_url=timeseries)
    store = timeseries_from(s)
    if not isinstance(store, Retention):
        fail(f"{type(store).__name__} has no retention setting")
    store.connect()
    try:
        return store.set_retention(seconds) if change else store.retention()
    finally:
        store.close()


@retention_app.command("show")
def show(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    timeseries: StoreOpt = None,
    registry: Annotated[str | None, typer.Option("--registry")] = None,
) -> None:
    """How long data is kept, and where that is configured (viewers)."""
    _require("viewer", "show retention", registry)
    info = _run(timeseries, None, change=False)
    if as_json:
        emit_json(info.as_dict())
    else:
        typer.echo(f"retention: {human(info.seconds)} ({info.where})")


@retention_app.command("set")
def set_(
    duration: Annotated[str, typer.Argument(help="e.g. 90d, 12w, 1y, or inf")],
    timeseries: StoreOpt = None,
    registry: Annotated[str | None, typer.Option("--registry")] = None,
) -> None:
    """Keep data this long; older data is deleted by the store (admins)."""
    try:
        seconds = parse_retention(duration)
    except ValueError as e:
        fail(str(e))
    _require("admin", "change retention", registry)
    info = _run(timeseries, seconds, change=True)
    typer.echo(f"retention: {human(info.seconds)} ({info.where})")


def _run_downsample(timeseries: str | None, every_s: int | None, change: bool) -> DownsampleInfo:
    s = settings(timeseries_url=timeseries)
    store = timeseries_from(s)
    if not isinstance(store, Downsampling):
        fail(f"{type(store).__name__} has no downsampling (embedded and influxdb1 stores do)")
    store.connect()
    try:
        return store.set_downsampling(every_s) if change else store.downsampling()
    finally:
        store.close()


def _print_downsample(info: DownsampleInfo) -> None:
    if info.every_s is None:
        typer.echo(f"downsampling: off ({info.where})")
    else:
        typer.echo(f"downsampling: means per {human(info.every_s)} into {', '.join(info.targets)} ({info.where})")


@downsample_app.command("show")
def downsample_show(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    timeseries: StoreOpt = None,
    registry: Annotated[str | None, typer.Option("--registry")] = None,
) -> None:
    """Whether old data is rolled up into means, and where they go (viewers)."""
    _require("viewer", "show downsampling", registry)
    info = _run_downsample(timeseries, None, change=False)
    if as_json:
        emit_json(info.as_dict())
    else:
        _print_downsample(info)


@downsample_app.command("set")
def downsample_set(
    every: Annotated[str, typer.Argument(help="bucket width, e.g. 1m, 5m, 1h, or off")],
    timeseries: StoreOpt = None,
    registry: Annotated[str | None, typer.Option("--registry")] = None,
) -> None:
    """Keep means per interval apart from raw data, so raw retention can be short (admins)."""
    try:
        every_s = parse_every(every)
    except ValueError as e:
        fail(str(e))
    _require("admin", "change downsampling", registry)
    _print_downsample(_run_downsample(timeseries, every_s, change=True))
