"""Store backends, one module each, and the URL scheme → backend factory tables."""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import urlsplit

from core.stores import DocumentStore, StoreConfigError, TimeSeriesStore

TIMESERIES_BACKENDS: dict[str, str] = {
    "influxdb": "ingest.stores.influxdb2:InfluxDB2Store",
    "influxdb1": "ingest.stores.influxdb1:InfluxDB1Store",
    "embedded": "ingest.stores.tsembedded:EmbeddedTimeSeriesStore",
    "sqlite": "ingest.stores.tsembedded:EmbeddedTimeSeriesStore",
}
DOCUMENT_BACKENDS: dict[str, str] = {
    "mongodb": "ingest.stores.mongo:MongoDocumentStore",
    "mongodb+srv": "ingest.stores.mongo:MongoDocumentStore",
    "embedded": "ingest.stores.mongo:MongoDocumentStore",
    "montydb": "ingest.stores.mongo:MongoDocumentStore",
}


def _scheme(url: str) -> str:
    return "embedded" if url in ("", "embedded") else urlsplit(url).scheme


def _factory(table: dict[str, str], role: str, url: str) -> Any:
    scheme = _scheme(url)
    target = table.get(scheme)
    if target is None:
        known = ", ".join(sorted(table))
        raise StoreConfigError(f"unsupported {role} URL scheme {scheme!r} (known: {known})")
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def open_timeseries(url: str, **options: Any) -> TimeSeriesStore:
    """Build (not connect) the time-series store for ``url``; options: token, data_dir."""
    return _factory(TIMESERIES_BACKENDS, "time-series", url).from_url(url, **options)


def open_documents(url: str, **options: Any) -> DocumentStore:
    """Build (not connect) the document store for ``url``; options: data_dir."""
    return _factory(DOCUMENT_BACKENDS, "documents", url).from_url(url, **options)
