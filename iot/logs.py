"""How the daemon logs: text or JSON lines (``IOT_LOG_FORMAT``), a level (``IOT_LOG_LEVEL``), and
repeated warnings rate-limited per message template (``IOT_LOG_REPEAT_INTERVAL``)."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import IO, Any


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
SUPPRESSED = "suppressed"  # the record attribute: similar records dropped since the last one let through
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


EVERY = "log_every"
"""``extra={EVERY: True}``: this record is never rate-limited by :class:`RepeatFilter`."""


class RepeatFilter(logging.Filter):
    """Lets the first record of a message template (logger, level, format string) through, then at
    most one per ``interval`` seconds; the one let through says how many were dropped before it
    (``record.suppressed``). Records below ``level`` always pass, and so do records logged with
    ``extra={EVERY: True}``: events each worth a line however often they come (a process that died)."""

    MAX_TEMPLATES = 10_000

    def __init__(
        self, interval: float, level: int = logging.WARNING, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.interval = interval
        self.level = level
        self.clock = clock
        self._last: dict[tuple[str, int, str], tuple[float, int]] = {}  # template -> (let through at, dropped)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.level or self.interval <= 0 or getattr(record, EVERY, False):
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        seen = self._last.get(key)
        if seen is not None and now - seen[0] < self.interval:
            self._last[key] = (seen[0], seen[1] + 1)
            return False
        if len(self._last) >= self.MAX_TEMPLATES:
            self._last.clear()
        self._last[key] = (now, 0)
        if seen is not None and seen[1]:
            setattr(record, SUPPRESSED, seen[1])
        return True


class TextFormatter(logging.Formatter):
    def __init__(self, interval: float) -> None:
        super().__init__(TEXT_FORMAT)
        self.interval = interval

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        n = getattr(record, SUPPRESSED, 0)
        if n:
            line += f" ({n} similar suppressed in the last {self.interval:g}s)"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, the
    record's extras (``extra=`` of the call, ``suppressed``) and ``exc`` with a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for k, v in vars(record).items():
            if k not in _STANDARD and k not in doc:
                doc[k] = v
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


class DaemonHandler(logging.StreamHandler[IO[str]]):
    """The handler :func:`configure_logging` installs (and replaces when called again)."""


def configure_logging(
    fmt: LogFormat | str = LogFormat.TEXT,
    level: str = "INFO",
    repeat_interval: float = 30.0,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Replace the handler this function installed before (if any) with one on ``stream`` (stderr)."""
    handler = DaemonHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if LogFormat(fmt) is LogFormat.JSON else TextFormatter(repeat_interval))
    handler.addFilter(RepeatFilter(repeat_interval))
    root = logging.getLogger()
    for h in [h for h in root.handlers if isinstance(h, DaemonHandler)]:
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
    return handler
