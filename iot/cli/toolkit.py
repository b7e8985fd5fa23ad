"""What every CLI module shares: settings, the acting operator, exit codes and the one mapping from
errors to them, tables and JSON output."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any, NoReturn

from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from core.config import Settings
from core.stores import StoreConfigError, StoreUnavailable
from ingest.broker import BrokerConfigError
from registry.alerts.store import InvalidTransition
from registry.auth import Actor, PermissionDenied, authenticate
from registry.db import SchemaNotMigrated, check_migrated, make_engine


class ExitCode(IntEnum):
    """Every ``iot`` command's exit codes (README, "Command line")."""

    OK = 0
    FAILED = 1  # not found, unreachable, or the command's own check failed (status degraded, demo mismatch)
    USAGE = 2  # a usage mistake, invalid input or settings
    DENIED = 3  # permission denied for the acting API key
    STATE = 4  # not allowed in the object's current state (e.g. acknowledging a resolved alert)
    INTERRUPTED = 130  # Ctrl-C


class CliError(Exception):
    """A user mistake or an unusable environment: printed as one line, exit ``code``."""

    def __init__(self, message: str, code: int = ExitCode.USAGE) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = ExitCode.USAGE) -> NoReturn:
    raise CliError(message, code)


def _first_line(e: BaseException) -> str:
    text = str(e)
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"


def as_cli_error(e: Exception) -> CliError | None:
    """The one mapping from the errors commands meet to a line and an exit code; None for a bug."""
    if isinstance(e, CliError):
        return e
    if isinstance(e, PermissionDenied):
        return CliError(f"permission denied: {e}", ExitCode.DENIED)
    if isinstance(e, InvalidTransition):
        return CliError(str(e), ExitCode.STATE)
    if isinstance(e, StoreConfigError | SchemaNotMigrated | ValidationError | BrokerConfigError):
        return CliError(str(e), ExitCode.USAGE)
    if isinstance(e, StoreUnavailable | SQLAlchemyError | OSError):
        return CliError(_first_line(e), ExitCode.FAILED)
    if isinstance(e, LookupError):  # DeviceNotFound, AlertNotFound: the message is the first argument
        return CliError(str(e.args[0] if e.args else e), ExitCode.FAILED)
    if isinstance(e, ValueError):  # RuleError and other invalid input refused by the registry
        return CliError(str(e), ExitCode.USAGE)
    return None


def api_key(s: Settings) -> str | None:
    """The operator's API key (IOT_API_KEY, or its file in IOT_SECRETS_DIR); None for none."""
    return s.api_key.get_secret_value() if s.api_key else None


@contextmanager
def acting(s: Settings, engine: Engine | None = None) -> Iterator[tuple[Session, Actor]]:
    """A session on the migrated registry and the actor behind the API key; commits on success.

    Every error inside becomes one line and its exit code (:func:`as_cli_error`). ``engine`` is
    used (and left open) when given; otherwise one is made for ``s`` and disposed of.
    """
    own = engine is None
    eng = make_engine(s.resolved_registry_url()) if engine is None else engine
    try:
        check_migrated(eng)
        with Session(eng) as session:
            actor = authenticate(session, api_key(s))
            yield session, actor
            session.commit()
    except Exception as e:
        err = as_cli_error(e)
        if err is None:
            raise
        raise err from None
    finally:
        if own:
            eng.dispose()


def settings(**overrides: Any) -> Settings:
    """Settings from env/.env (and files in ``IOT_SECRETS_DIR``, one per secret, named like
    ``iot_influxdb_token``) with the non-None CLI flags laid over them."""
    values: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    secrets_dir = os.environ.get("IOT_SECRETS_DIR")
    if secrets_dir:
        if not os.path.isdir(secrets_dir):
            fail(f"IOT_SECRETS_DIR {secrets_dir!r} is not a directory")
        values["_secrets_dir"] = secrets_dir
    try:
        return Settings(**values)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        fail(f"invalid setting IOT_{where.upper()}: {err['msg']}")


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)?$")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_duration(text: str) -> float:
    """``90``, ``30s``, ``5m``, ``1h``, ``7d`` → seconds; a bad value is a CLI error."""
    m = _DURATION.match(text.strip())
    if not m:
        fail(f"invalid duration {text!r}: use e.g. 30s, 5m, 1h, 7d")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def iso(ts: datetime | float | int | None) -> str:
    if ts is None:
        return ""
    if isinstance(ts, int | float):
        ts = datetime.fromtimestamp(ts, UTC)
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _default(o: Any) -> Any:
    if isinstance(o, datetime):
        return iso(o)
    if isinstance(o, bytes):
        return o.decode("utf-8", "backslashreplace")
    return str(o)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=_default, indent=2, sort_keys=False) + "\n")


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title, show_lines=False, header_style="bold")
    for c in columns:
        table.add_column(c)
    for row in rows:
        table.add_row(*(escape("" if v is None else iso(v) if isinstance(v, datetime) else str(v)) for v in row))
    Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200).print(table)
