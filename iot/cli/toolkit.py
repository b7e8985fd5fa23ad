"""What every CLI module shares: settings, exit codes and one-line errors, tables and JSON output.

Acting on the registry as an operator, and the mapping from errors to exit codes: ``iot.cli.acting``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import IntEnum
from typing import Any, NoReturn

from pydantic import ValidationError

from core import timefmt
from core.config import Settings
from core.devicetext import for_terminal


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


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)?")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_duration(text: str) -> float:
    """``90``, ``30s``, ``5m``, ``1h``, ``7d`` → seconds; a bad value is a CLI error."""
    m = _DURATION.fullmatch(text.strip())
    if not m:
        fail(f"invalid duration {text!r}: use e.g. 30s, 5m, 1h, 7d")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def iso(ts: datetime | float | int | None) -> str:
    return "" if ts is None else timefmt.iso(ts)


def _default(o: Any) -> Any:
    if isinstance(o, datetime):
        return iso(o)
    if isinstance(o, bytes):
        return o.decode("utf-8", "backslashreplace")
    return str(o)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=_default, indent=2, sort_keys=False) + "\n")


def shown(v: Any, keep: str = "") -> str:
    """A value for terminal output: times as ISO, None empty, and every non-printable character but
    those in ``keep`` (ESC, C1, CR, bidi controls: device text) written as its escape (``core.devicetext``)."""
    return for_terminal("" if v is None else iso(v) if isinstance(v, datetime) else str(v), keep)


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> None:
    """One table; cells as :func:`shown` (a newline kept: it only makes the cell taller)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title, show_lines=False, header_style="bold")
    for c in columns:
        table.add_column(c)
    for row in rows:
        table.add_row(*(escape(shown(v, keep="\n")) for v in row))
    Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200).print(table)


def parse_every(every: str | None) -> int | None:
    """A bucket width option (``--every 1m``) in whole seconds, at least one; a bad value is one line."""
    if every is None:
        return None
    seconds = int(parse_duration(every))
    if seconds < 1:
        fail(f"invalid --every {every!r}: at least 1s")
    return seconds
