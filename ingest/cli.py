"""The ``iot`` command: thin Typer sub-apps that parse, build settings and call one function."""

from __future__ import annotations

import sys

import typer

from ingest import cli_deadletters, cli_telemetry
from ingest.cli_common import CliError
from registry import cli as registry_cli
from registry.alerts import cli as alerts_cli
from simulators import cli as sim_cli

app = typer.Typer(no_args_is_help=True, add_completion=False, help="polyglot-iot: MQTT → InfluxDB, MongoDB, PostgreSQL.")
ingest_app = typer.Typer(no_args_is_help=True, help="The ingestion daemon.")
app.add_typer(ingest_app, name="ingest")
sim_cli.app.command("provision")(registry_cli.provision)
app.add_typer(sim_cli.app, name="sim", help="Device simulators.")
app.add_typer(cli_telemetry.app, name="telemetry", help="Query time-series data.")
app.add_typer(registry_cli.devices_app, name="devices", help="The device registry.")
app.add_typer(registry_cli.registry_app, name="registry", help="Registry schema and broker access.")
app.add_typer(alerts_cli.app, name="alerts", help="Alerts and alert rules.")
app.add_typer(cli_deadletters.app, name="deadletters", help="Messages that could not be stored.")


def main() -> None:
    """Entry point: run the app; known failures become one line on stderr, never a traceback."""
    from pydantic import ValidationError
    from sqlalchemy.exc import SQLAlchemyError

    from ingest.stores import StoreConfigError, StoreUnavailable
    from registry.db import SchemaNotMigrated

    try:
        app(standalone_mode=False)
    except CliError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(e.code)
    except (StoreConfigError, SchemaNotMigrated, ValidationError) as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except (StoreUnavailable, SQLAlchemyError, OSError) as e:
        typer.echo(f"error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:  # click's usage errors, exits and aborts (typer vendors click)
        name = type(e).__name__
        if name == "Exit":
            sys.exit(getattr(e, "exit_code", 0))
        if name == "Abort":
            sys.exit(1)
        if hasattr(e, "show") and hasattr(e, "exit_code"):
            e.show()
            sys.exit(e.exit_code)
        raise
