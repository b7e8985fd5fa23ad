"""Store interfaces, query types and errors: what every backend implements and every caller catches.

Every backend follows one lifecycle: built from a URL by its factory, ``connect()`` once,
``write(batch)`` any number of times (one network call per batch where the server allows),
``close()`` after the last write. ``write`` raises :class:`StoreUnavailable` when the server
cannot be reached or fails transiently (the caller spools and retries the whole batch, which
is safe because every write is idempotent), :class:`StoreNeedsOperator` when it refuses us for
a reason waiting will not fix (the caller still keeps and retries the batch, and says so), and
returns the items the server refused for good, each with a reason (the caller dead-letters
exactly those). Each backend maps its library's exceptions to these in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from core.model import Document, Point


class StoreUnavailable(Exception):
    """Transient failure: nothing of the batch may be assumed written; retry it whole.

    ``retry_after``: seconds the server asked us to wait (HTTP ``Retry-After``), if it said."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreNeedsOperator(StoreUnavailable):
    """The store refuses us and waiting will not fix it: bad credentials (401/403, auth failed),
    a missing database, bucket or table, missing privileges. Nothing is dropped: the batch is
    kept (spooled) and retried with backoff, so the data flows once an operator has fixed it."""


class StoreConfigError(ValueError):
    """The URL or settings for a store are wrong; raised at start-up, never mid-stream."""


@dataclass(frozen=True, slots=True)
class SeriesQuery:
    """One range of a measurement: of one device, or of several devices merged into one series
    (``device_id`` a tuple: rows and aggregate windows over all of them together)."""

    measurement: str
    device_id: str | tuple[str, ...]
    since_ns: int
    until_ns: int | None = None
    field: str | None = None
    every_s: int | None = None
    agg: str | None = None  # mean|min|max|last|count, with every_s
    limit: int = 1000

    @property
    def devices(self) -> tuple[str, ...]:
        return (self.device_id,) if isinstance(self.device_id, str) else self.device_id


AGGREGATES = ("mean", "min", "max", "last", "count")


@dataclass(frozen=True, slots=True)
class Row:
    ts_ns: int
    values: dict[str, Any]


class TimeSeriesStore(Protocol):
    """A time-series backend. Writes are idempotent: same series + timestamp overwrites."""

    def connect(self) -> None: ...
    def write(self, points: Sequence[Point]) -> list[tuple[Point, str]]: ...
    def query(self, q: SeriesQuery) -> list[Row]: ...
    def latest(self, measurement: str, device_id: str) -> dict[str, tuple[int, Any]]: ...
    def count(self, measurement: str, device_id: str | None = None) -> int:
        """How many field values are stored (for comparing with what was sent)."""
        ...

    def close(self) -> None: ...


class DocumentStore(Protocol):
    """A document backend. Writes are idempotent by ``Document.key``; config is versioned."""

    def connect(self) -> None: ...
    def write(self, docs: Sequence[Document]) -> list[tuple[Document, str]]: ...
    def find(self, collection: str, device_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]: ...
    def latest(self, collection: str, device_id: str) -> dict[str, Any] | None: ...
    def count(self, collection: str, device_id: str | None = None) -> int: ...
    def close(self) -> None: ...
