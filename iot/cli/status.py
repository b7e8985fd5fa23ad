"""``iot status``: the running daemon's health, read from its metrics endpoint."""

from __future__ import annotations

import typer

from core.redact import redact_url
from iot.cli.toolkit import ExitCode, emit_json, fail, print_table, settings
from iot.status import fetch_status, group

app = typer.Typer()


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
