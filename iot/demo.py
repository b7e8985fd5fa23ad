"""`iot demo`: embedded broker, stores, daemon and a simulated fleet in one process, then a summary."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from core.config import Settings
from core.model import COLLECTIONS, MEASUREMENTS, Kind
from ingest.broker import EmbeddedBroker, free_port
from ingest.stores import open_documents, open_timeseries
from iot.demo_rules import install_demo_rules
from iot.service import build_daemon
from registry.db import make_engine, migrate
from registry.deadletters import DeadLetterStore
from registry.models import Alert
from simulators.fleet import FleetConfig
from simulators.runner import run_fleet

TS_KINDS = (Kind.TELEMETRY, Kind.METRICS, Kind.EVENTS)
DOC_KINDS = (Kind.CONFIG, Kind.FIRMWARE, Kind.MAINTENANCE)


@dataclass
class DemoResult:
    """Sent (per the simulator's manifest) against stored (counted in the stores afterwards)."""

    sent: dict[str, int]
    stored: dict[str, int]
    malformed_sent: int
    dead_lettered: int
    duplicates_sent: int
    alerts: dict[str, int] = field(default_factory=dict)
    data_dir: str = ""

    @property
    def complete(self) -> bool:
        return self.sent == self.stored and self.dead_lettered == self.malformed_sent


def run_demo(
    settings: Settings, *, duration: float, devices: int, rate: float, seed: int, progress: Any = None
) -> DemoResult:
    """Run the whole pipeline in-process on a fresh data directory and count what arrived."""
    data_dir = settings.data_dir / "demo"
    shutil.rmtree(data_dir, ignore_errors=True)
    port = free_port()
    s = settings.model_copy(
        update={
            "data_dir": data_dir,
            "broker_url": "embedded",
            "embedded_broker_port": port,
            "timeseries_url": "embedded",
            "documents_url": "embedded",
            "registry_url": "",
            "flush_interval": 0.25,
            "metrics_port": 0,
            "spool_dir": None,
            "unknown_devices": "register",
            "client_id": "iot-demo-ingest",
        }
    )
    logging.getLogger("iot").setLevel(logging.WARNING)
    engine = make_engine(s.resolved_registry_url())
    migrate(engine)
    install_demo_rules(engine)
    engine.dispose()
    broker = EmbeddedBroker("127.0.0.1", port).start()
    try:
        daemon = build_daemon(s)
        daemon.start()
        deadline = time.monotonic() + 15
        while not daemon.connected.wait(0.1):
            if time.monotonic() > deadline:
                raise RuntimeError("the daemon did not subscribe to the embedded broker")
        config = FleetConfig(
            devices=devices,
            rate=rate,
            duration=duration,
            seed=seed,
            malformed=0.02,
            duplicates=0.02,
            start_ms=int(time.time() * 1000),
        )
        manifest = run_fleet(config, f"mqtt://127.0.0.1:{port}", progress)
        deadline = time.monotonic() + 30 + duration
        while not daemon.idle() and time.monotonic() < deadline:
            time.sleep(0.1)
        daemon.shutdown()
    finally:
        broker.stop()

    sent = {k.value: manifest.totals.readings[k.value] for k in TS_KINDS}
    sent |= {k.value: manifest.totals.documents[k.value] for k in DOC_KINDS}
    ts = open_timeseries("embedded", data_dir=data_dir)
    docs = open_documents("embedded", data_dir=data_dir)
    ts.connect()
    docs.connect()
    try:
        stored = {k.value: ts.count(MEASUREMENTS[k]) for k in TS_KINDS}
        stored |= {k.value: docs.count(COLLECTIONS[k]) for k in DOC_KINDS}
    finally:
        ts.close()
        docs.close()
    engine = make_engine(s.resolved_registry_url())
    result = DemoResult(
        sent,
        stored,
        len(manifest.malformed),
        DeadLetterStore(engine).count(),
        manifest.duplicates,
        _alert_counts(engine),
        str(data_dir),
    )
    engine.dispose()
    return result


def _alert_counts(engine: Any) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(select(Alert.status, func.count()).group_by(Alert.status)).all()
    return {status: n for status, n in rows}
