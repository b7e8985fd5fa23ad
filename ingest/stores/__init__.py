"""Store backends, one module each, and the URL scheme → backend tables that pick one.

A new backend is one module here (a class implementing :class:`core.stores.TimeSeriesStore` or
:class:`core.stores.DocumentStore`, with a ``from_url`` classmethod) plus one line in a table below.
The tables name each backend's module and class: a module (and its client library: influxdb-client,
pymongo, montydb) is imported only when a URL asks for it, so a command that never opens a store
never pays for a store client (tests/test_cli_startup.py).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, NamedTuple, Protocol
from urllib.parse import urlsplit

from core.config import Settings
from core.stores import DocumentStore, StoreConfigError, TimeSeriesStore


class TimeSeriesFactory(Protocol):
    """Builds (does not connect) a time-series store from its URL; secrets come from Settings."""

    def __call__(
        self, url: str, *, token: str | None = None, password: str | None = None, data_dir: Path | None = None
    ) -> TimeSeriesStore: ...


class DocumentFactory(Protocol):
    """Builds (does not connect) a document store from its URL, with its write concern."""

    def __call__(
        self,
        url: str,
        *,
        data_dir: Path | None = None,
        password: str | None = None,
        w: int | str = 1,
        journal: bool = True,
    ) -> DocumentStore: ...


class Backend(NamedTuple):
    """Where a backend lives: ``ingest.stores.<module>``, class ``cls`` (with ``from_url``)."""

    module: str
    cls: str

    def factory(self) -> Any:  # the class's from_url: a TimeSeriesFactory or a DocumentFactory
        return getattr(importlib.import_module(f"ingest.stores.{self.module}"), self.cls).from_url


TIMESERIES_BACKENDS: dict[str, Backend] = {
    "influxdb": Backend("influxdb2", "InfluxDB2Store"),
    "influxdb1": Backend("influxdb1", "InfluxDB1Store"),
    "embedded": Backend("tsembedded", "EmbeddedTimeSeriesStore"),
    "sqlite": Backend("tsembedded", "EmbeddedTimeSeriesStore"),
}
DOCUMENT_BACKENDS: dict[str, Backend] = {
    "mongodb": Backend("mongo", "MongoDocumentStore"),
    "mongodb+srv": Backend("mongo", "MongoDocumentStore"),
    "embedded": Backend("mongo", "MongoDocumentStore"),
    "montydb": Backend("mongo", "MongoDocumentStore"),
}


def scheme(url: str) -> str:
    """The backend a URL names: its scheme, or ``embedded`` for an empty URL."""
    return "embedded" if url in ("", "embedded") else urlsplit(url).scheme


def _unsupported(role: str, url: str, known: dict[str, Backend]) -> Exception:
    return StoreConfigError(f"unsupported {role} URL scheme {scheme(url)!r} (known: {', '.join(sorted(known))})")


def open_timeseries(
    url: str, *, token: str | None = None, password: str | None = None, data_dir: Path | None = None
) -> TimeSeriesStore:
    """Build (not connect) the time-series store for ``url``."""
    backend = TIMESERIES_BACKENDS.get(scheme(url))
    if backend is None:
        raise _unsupported("time-series", url, TIMESERIES_BACKENDS)
    factory: TimeSeriesFactory = backend.factory()
    return factory(url, token=token, password=password, data_dir=data_dir)


def open_documents(
    url: str, *, data_dir: Path | None = None, password: str | None = None, w: int | str = 1, journal: bool = True
) -> DocumentStore:
    """Build (not connect) the document store for ``url``."""
    backend = DOCUMENT_BACKENDS.get(scheme(url))
    if backend is None:
        raise _unsupported("documents", url, DOCUMENT_BACKENDS)
    factory: DocumentFactory = backend.factory()
    return factory(url, data_dir=data_dir, password=password, w=w, journal=journal)


def timeseries_from(settings: Settings) -> TimeSeriesStore:
    """The time-series store ``settings`` names, its secrets from the settings layer (env, .env,
    ``IOT_SECRETS_DIR``), never read from the environment by the adapter itself."""
    return open_timeseries(
        settings.timeseries_url,
        token=settings.reveal(settings.influxdb_token),
        password=settings.reveal(settings.influxdb_password),
        data_dir=settings.data_dir,
    )


def documents_from(settings: Settings) -> DocumentStore:
    """The document store ``settings`` names, with its password and write concern."""
    w: int | str = int(settings.mongodb_w) if settings.mongodb_w.isdigit() else settings.mongodb_w
    return open_documents(
        settings.documents_url,
        data_dir=settings.data_dir,
        password=settings.reveal(settings.mongodb_password),
        w=w,
        journal=settings.mongodb_journal,
    )
