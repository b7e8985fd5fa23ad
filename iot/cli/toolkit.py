"""What every CLI module shares: settings, exit codes and one-line errors, tables and JSON output.

Acting on the registry as an operator, and the mapping from errors to exit codes: ``iot.cli.acting``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from core import timefmt
from core.config import Settings
from core.devicetext import for_terminal
from iot.cli.exits import CliError as CliError
from iot.cli.exits import ExitCode as ExitCode
from iot.cli.exits import fail as fail


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


def parse_time(text: str, option: str, now_ns: int) -> int:
    """``1h`` (that long ago), or an ISO 8601 / RFC 3339 time → ns since the epoch."""
    try:
        return now_ns - int(parse_duration(text) * 1e9)
    except CliError:
        pass
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        fail(f"invalid {option} {text!r}: use a duration (30s, 5m, 1h, 7d) or an ISO time")
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp()) * 10**9 + t.microsecond * 1000
