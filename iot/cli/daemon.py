"""``iot ingest run``: the ingestion daemon (or, with ``--workers N``, its supervisor)."""

from __future__ import annotations

from pathlib import Path

import typer

from ingest.decoding.mappings import MappingError, load_mappings
from iot.cli.toolkit import fail, settings
from iot.logs import LogFormat
from iot.service import run_daemon
from iot.workers import WorkersRefused, run_workers

app = typer.Typer(no_args_is_help=True, help="The ingestion daemon.")


@app.command("run")
def ingest_run(
    broker: str | None = typer.Option(None, help="mqtt://\\[user:pass@]host:port, mqtts://…, or embedded"),
    timeseries: str | None = typer.Option(None, help="influxdb://…, influxdb1://…, or embedded"),
    documents: str | None = typer.Option(None, help="mongodb://…, or embedded"),
    registry: str | None = typer.Option(None, help="SQLAlchemy URL; default SQLite under IOT_DATA_DIR"),
    batch_size: int | None = typer.Option(None, min=1, help="points per batch (default 5000)"),
    flush_interval: float | None = typer.Option(None, min=0.001, help="seconds before a partial batch is written"),
    metrics_port: int | None = typer.Option(None, min=0, max=65535, help="serve /metrics and /healthz here"),
    workers: int | None = typer.Option(None, min=1, max=64, help="processes sharing one MQTT shared subscription"),
    mappings: Path | None = typer.Option(None, help="TOML file of topic mappings / firmware presets (IOT_MAPPINGS)"),
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
        mappings=mappings,
        log_format=log_format.value if log_format else None,
        log_level=log_level,
    )
    if s.mappings is not None:
        try:
            load_mappings(s.mappings, s.topic_root)  # a bad file is one line here, not a daemon failure
        except MappingError as e:
            fail(f"{s.mappings}: {e}")
    if s.workers > 1:
        try:
            raise typer.Exit(run_workers(s, s.workers))
        except WorkersRefused as e:
            fail(str(e))
    raise typer.Exit(run_daemon(s))
