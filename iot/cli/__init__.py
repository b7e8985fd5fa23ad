"""The ``iot`` command: thin Typer sub-apps that parse, build settings and call one function.

Each sub-app's module is imported only when its name is invoked (``iot.cli.lazy``, the table
below), so ``iot --version`` loads Typer and nothing else, and ``iot alerts list`` the registry but
no store client, broker client or daemon (tests/test_cli_startup.py, bench/cli_startup_bench.py).
"""

from __future__ import annotations

import importlib
import sys

import typer

from core.redact import redact_url
from iot.cli.exits import CliError, ExitCode
from iot.cli.lazy import Lazy, lazy_group

COMMANDS = {
    "ingest": Lazy("daemon", "app", "The ingestion daemon."),
    "sim": Lazy("sim", "app", "Device simulators."),
    "telemetry": Lazy("telemetry", "app", "Query and plot time-series data."),
    "devices": Lazy("registry", "devices_app", "The device registry."),
    "registry": Lazy("registry", "registry_app", "Registry schema and broker access."),
    "alerts": Lazy("alerts", "app", "Alerts and alert rules."),
    "deadletters": Lazy("deadletters", "app", "Messages that could not be stored."),
    "timeseries": Lazy("retention", "app", "The time-series store: retention."),
    "gateways": Lazy("gateways", "app", "Gateway credentials (one broker account, many devices)."),
    "mappings": Lazy("mappings", "app", "Topic mappings and firmware presets: check and try a file."),
    "demo": Lazy(
        "demo",
        "app",
        "Embedded broker, stores, daemon and fleet together; prints sent vs stored and exits.",
        group=False,
    ),
    "status": Lazy(
        "status", "app", "The running daemon's health at a glance: broker, stores, spool, counts.", group=False
    ),
}

app = typer.Typer(
    cls=lazy_group(COMMANDS), no_args_is_help=True, help="polyglot-iot: MQTT → InfluxDB, MongoDB, PostgreSQL."
)


def _version(show: bool) -> None:
    if show:
        from importlib.metadata import version  # stdlib, only for --version

        typer.echo(f"iot (polyglot-iot) {version('polyglot-iot')}")
        raise typer.Exit(ExitCode.OK)


@app.callback()
def _root(
    show_version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """polyglot-iot: MQTT → InfluxDB, MongoDB, PostgreSQL."""


def _as_cli_error(e: Exception) -> CliError | None:
    """The error mapping of ``iot.cli.acting``, loaded only when a command failed."""
    if isinstance(e, CliError):
        return e
    mapped: CliError | None = importlib.import_module("iot.cli.acting").as_cli_error(e)
    return mapped


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
        err = _as_cli_error(e)
        if err is None:
            raise
        typer.echo(f"error: {redact_url(str(err))}", err=True)
        sys.exit(err.code)
    sys.exit(rc if isinstance(rc, int) else ExitCode.OK)
