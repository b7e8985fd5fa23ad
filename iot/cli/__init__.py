"""The ``iot`` command: thin Typer sub-apps that parse, build settings and call one function."""

from __future__ import annotations

import sys
from importlib.metadata import version

import typer

from core.redact import redact_url
from iot.cli import alerts as alerts_cli
from iot.cli import deadletters as cli_deadletters
from iot.cli import notify as notify_cli
from iot.cli import plot as cli_plot
from iot.cli import registry as registry_cli
from iot.cli import retention as cli_retention
from iot.cli import sim as sim_cli
from iot.cli import telemetry as cli_telemetry
from iot.cli.acting import as_cli_error
from iot.cli.toolkit import ExitCode, emit_json, fail, print_table, settings
from iot.demo import run_demo
from iot.demo_view import LiveProgress, print_result
from iot.logs import LogFormat
from iot.service import run_daemon
from iot.status import fetch_status, group
from iot.workers import WorkersRefused, run_workers

app = typer.Typer(no_args_is_help=True, help="polyglot-iot: MQTT → InfluxDB, MongoDB, PostgreSQL.")


def _version(show: bool) -> None:
    if show:
        typer.echo(f"iot (polyglot-iot) {version('polyglot-iot')}")
        raise typer.Exit(ExitCode.OK)


@app.callback()
def _root(
    show_version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """polyglot-iot: MQTT → InfluxDB, MongoDB, PostgreSQL."""


ingest_app = typer.Typer(no_args_is_help=True, help="The ingestion daemon.")
app.add_typer(ingest_app, name="ingest")
sim_cli.app.command("provision")(registry_cli.provision)
app.add_typer(sim_cli.app, name="sim", help="Device simulators.")
cli_telemetry.app.command("plot")(cli_plot.plot)
app.add_typer(cli_telemetry.app, name="telemetry", help="Query and plot time-series data.")
app.add_typer(registry_cli.devices_app, name="devices", help="The device registry.")
app.add_typer(registry_cli.registry_app, name="registry", help="Registry schema and broker access.")
alerts_cli.app.add_typer(notify_cli.app, name="channels")
alerts_cli.app.add_typer(notify_cli.notifier_app, name="notifier")
app.add_typer(alerts_cli.app, name="alerts", help="Alerts and alert rules.")
app.add_typer(cli_deadletters.app, name="deadletters", help="Messages that could not be stored.")
app.add_typer(cli_retention.app, name="timeseries", help="The time-series store: retention.")


@ingest_app.command("run")
def ingest_run(
    broker: str | None = typer.Option(None, help="mqtt://\\[user:pass@]host:port, mqtts://…, or embedded"),
    timeseries: str | None = typer.Option(None, help="influxdb://…, influxdb1://…, or embedded"),
    documents: str | None = typer.Option(None, help="mongodb://…, or embedded"),
    registry: str | None = typer.Option(None, help="SQLAlchemy URL; default SQLite under IOT_DATA_DIR"),
    batch_size: int | None = typer.Option(None, min=1, help="points per batch (default 5000)"),
    flush_interval: float | None = typer.Option(None, min=0.001, help="seconds before a partial batch is written"),
    metrics_port: int | None = typer.Option(None, min=0, max=65535, help="serve /metrics and /healthz here"),
    workers: int | None = typer.Option(None, min=1, max=64, help="processes sharing one MQTT shared subscription"),
    log_format: LogFormat | None = typer.Option(None, help="text, or one JSON object a line (IOT_LOG_FORMAT)"),
    log_level: str | None = typer.Option(None, help="DEBUG, INFO, WARNING or ERROR (IOT_LOG_LEVEL)"),
) -> None:
    """Run the ingestion daemon until SIGTERM/SIGINT, then flush, acknowledge and exit 0."""
    s = settings(
        broker_url=broker,
        timeseries_url=timeseries,
        documents_url=documents,
        registry_url=registry,
        batch_size=batch_size,
        flush_interval=flush_interval,
        metrics_port=metrics_port,
        workers=workers,
        log_format=log_format.value if log_format else None,
        log_level=log_level,
    )
    if s.workers > 1:
        try:
            raise typer.Exit(run_workers(s, s.workers))
        except WorkersRefused as e:
            fail(str(e))
    raise typer.Exit(run_daemon(s))


@app.command("demo")
def demo(
    duration: float = typer.Option(20.0, min=1, help="seconds the simulated fleet sends"),
    devices: int = typer.Option(10, min=1, max=1000, help="simulated devices"),
    rate: float = typer.Option(5.0, min=0.1, help="messages per second per device"),
    seed: int = typer.Option(1, help="simulator seed"),
) -> None:
    """Embedded broker, stores, daemon and fleet together; prints sent vs stored and exits."""
    s = settings()
    typer.echo(
        f"polyglot-iot demo: {devices} devices x {rate:g} msg/s for {duration:g}s "
        "(embedded broker and stores, 2% malformed, 2% duplicates)",
        err=True,
    )
    with LiveProgress() as live:
        r = run_demo(s, duration=duration, devices=devices, rate=rate, seed=seed, progress=live)
    print_result(r)
    if not r.settled:
        fail(f"the daemon handled {r.handled_messages} of {r.expected_messages} acknowledged messages in time", 1)
    if not r.complete:
        fail("stored counts differ from what was sent", ExitCode.FAILED)


@app.command("status")
def status(
    url: str | None = typer.Option(None, help="daemon metrics base URL (default from IOT_METRICS_HOST/PORT)"),
    json_out: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """The running daemon's health at a glance: broker, stores, spool, counts. Exit 1 if degraded."""
    s = settings()
    if url is None:
        if not s.metrics_port:
            fail("the daemon's metrics endpoint is off (IOT_METRICS_PORT=0); give --url")
        url = f"http://{s.metrics_host}:{s.metrics_port}"
    try:
        st = fetch_status(url)
    except ValueError as e:
        fail(f"invalid --url {redact_url(url)}: {redact_url(str(e))}")
    except OSError as e:
        fail(f"no daemon answering at {redact_url(url)}: {redact_url(str(getattr(e, 'reason', e)))}", ExitCode.FAILED)
    health = st["health"]
    if json_out:
        emit_json(st)
    else:
        g = group(st["metrics"])
        typer.echo(
            f"status: {health.get('status')}   broker: {health.get('broker')}   "
            f"unacknowledged: {health.get('unacked', 0)}   "
            f"reconnects: {int(g.get('iot_broker_disconnects_total', {}).get('', 0))}"
        )
        for reason in health.get("reasons", []):
            typer.echo(f"  degraded: {reason}")
        stores = health.get("stores", {})
        print_table(
            ["store", "up", "written", "rejected", "errors", "spooled batches", "spool bytes", "held", "quarantined"],
            [
                (
                    d,
                    "yes" if v.get("up") else "NO",
                    int(g.get("iot_items_written_total", {}).get(d, 0)),
                    int(g.get("iot_items_rejected_total", {}).get(d, 0)),
                    int(g.get("iot_store_errors_total", {}).get(d, 0)),
                    v.get("spooled_batches", 0),
                    int(g.get("iot_spool_bytes", {}).get(d, 0)),
                    v.get("held_batches", 0),
                    v.get("quarantined", 0),
                )
                for d, v in stores.items()
            ],
        )
        received = g.get("iot_messages_received_total", {})
        print_table(["received", "messages"], sorted((k, int(v)) for k, v in received.items()))
        dead = g.get("iot_messages_dead_lettered_total", {})
        if dead:
            print_table(["dead-lettered", "messages"], sorted((k, int(v)) for k, v in dead.items()))
    if health.get("status") != "ok":
        raise typer.Exit(ExitCode.FAILED)


def main() -> None:
    """Entry point: run the app; known failures become one line on stderr, never a traceback."""
    try:
        rc = app(standalone_mode=False)
    except KeyboardInterrupt:
        sys.exit(ExitCode.INTERRUPTED)
    except Exception as e:  # click's usage errors, exits and aborts (typer vendors click), then ours
        name = type(e).__name__
        if name == "Exit":
            sys.exit(getattr(e, "exit_code", ExitCode.OK))
        if name == "Abort":
            sys.exit(ExitCode.FAILED)
        if hasattr(e, "show") and hasattr(e, "exit_code"):
            e.show()
            sys.exit(e.exit_code)
        err = as_cli_error(e)
        if err is None:
            raise
        typer.echo(f"error: {redact_url(str(err))}", err=True)
        sys.exit(err.code)
    sys.exit(rc if isinstance(rc, int) else ExitCode.OK)
