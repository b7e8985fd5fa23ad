"""The container test's probe, run inside the project image with a service's IOT_* settings:
what the stores hold for the given devices, as JSON on stdout.

    python count_stored.py DEVICE[,DEVICE…] [--documents]

Readings per device and kind from the time-series store, dead letters from the registry, and with
``--documents`` (only while the daemon is stopped: the embedded engine is its files) the
document counts per device and kind.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from core.model import COLLECTIONS, MEASUREMENTS, Kind
from ingest.stores import open_documents, open_timeseries
from iot.cli.toolkit import settings
from registry.db import make_engine
from registry.deadletters import DeadLetterStore

TS_KINDS = (Kind.TELEMETRY, Kind.METRICS, Kind.EVENTS)
DOC_KINDS = (Kind.CONFIG, Kind.FIRMWARE, Kind.MAINTENANCE)


def main(argv: list[str]) -> dict[str, Any]:
    devices = argv[0].split(",")
    s = settings()
    token = s.influxdb_token.get_secret_value() if s.influxdb_token else None
    ts = open_timeseries(s.timeseries_url, token=token, data_dir=s.data_dir)
    ts.connect()
    try:
        readings = {d: {k.value: ts.count(MEASUREMENTS[k], d) for k in TS_KINDS} for d in devices}
    finally:
        ts.close()
    engine = make_engine(s.resolved_registry_url())
    try:
        dead_letters = DeadLetterStore(engine).count()
    finally:
        engine.dispose()
    out: dict[str, Any] = {"readings": readings, "dead_letters": dead_letters}
    if "--documents" in argv:
        docs = open_documents(s.documents_url, data_dir=s.data_dir)
        docs.connect()
        try:
            out["documents"] = {d: {k.value: docs.count(COLLECTIONS[k], d) for k in DOC_KINDS} for d in devices}
        finally:
            docs.close()
    return out


if __name__ == "__main__":
    json.dump(main(sys.argv[1:]), sys.stdout)
