"""Store backends, one module each, and the URL scheme → backend tables that pick one.

A new backend is one module here (a class implementing :class:`core.stores.TimeSeriesStore` or
:class:`core.stores.DocumentStore`, with a ``from_url`` classmethod) plus one line in a table below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from core.stores import DocumentStore, StoreConfigError, TimeSeriesStore
from ingest.stores.influxdb1 import InfluxDB1Store
from ingest.stores.influxdb2 import InfluxDB2Store
from ingest.stores.mongo import MongoDocumentStore
from ingest.stores.tsembedded import EmbeddedTimeSeriesStore


class TimeSeriesFactory(Protocol):
    """Builds (does not connect) a time-series store from its URL."""

    def __call__(self, url: str, *, token: str | None = None, data_dir: Path | None = None) -> TimeSeriesStore: ...


class DocumentFactory(Protocol):
    """Builds (does not connect) a document store from its URL."""

    def __call__(self, url: str, *, data_dir: Path | None = None) -> DocumentStore: ...


TIMESERIES_BACKENDS: dict[str, TimeSeriesFactory] = {
    "influxdb": InfluxDB2Store.from_url,
    "influxdb1": InfluxDB1Store.from_url,
    "embedded": EmbeddedTimeSeriesStore.from_url,
    "sqlite": EmbeddedTimeSeriesStore.from_url,
}
DOCUMENT_BACKENDS: dict[str, DocumentFactory] = {
    "mongodb": MongoDocumentStore.from_url,
    "mongodb+srv": MongoDocumentStore.from_url,
    "embedded": MongoDocumentStore.from_url,
    "montydb": MongoDocumentStore.from_url,
}


def scheme(url: str) -> str:
    """The backend a URL names: its scheme, or ``embedded`` for an empty URL."""
    return "embedded" if url in ("", "embedded") else urlsplit(url).scheme


def _unsupported(role: str, url: str, known: dict[str, TimeSeriesFactory] | dict[str, DocumentFactory]) -> Exception:
    return StoreConfigError(f"unsupported {role} URL scheme {scheme(url)!r} (known: {', '.join(sorted(known))})")


def open_timeseries(url: str, *, token: str | None = None, data_dir: Path | None = None) -> TimeSeriesStore:
    """Build (not connect) the time-series store for ``url``."""
    factory = TIMESERIES_BACKENDS.get(scheme(url))
    if factory is None:
        raise _unsupported("time-series", url, TIMESERIES_BACKENDS)
    return factory(url, token=token, data_dir=data_dir)


def open_documents(url: str, *, data_dir: Path | None = None) -> DocumentStore:
    """Build (not connect) the document store for ``url``."""
    factory = DOCUMENT_BACKENDS.get(scheme(url))
    if factory is None:
        raise _unsupported("documents", url, DOCUMENT_BACKENDS)
    return factory(url, data_dir=data_dir)
