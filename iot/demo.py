"""`iot demo`: embedded broker, stores, daemon and a provisioned fleet in one process, then a summary.

Lifecycle: provision the fleet (types and sites) and the demo alert rules in a fresh SQLite
registry, start the embedded broker and the daemon, run the fleet, then wait until the daemon has
handled every message the broker acknowledged to the fleet (the manifest's count) and is idle —
with a deadline — before shutting down, and count what the stores hold. ``progress`` (if given)
is called about twice a second with a :class:`DemoProgress` from a side thread.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from core.config import Settings
from core.model import COLLECTIONS, MEASUREMENTS, Kind, Reason
from core.stores import SeriesQuery
from core.timefmt import utc
from ingest.mqtt.broker import EmbeddedBroker, free_port
from ingest.stores import open_documents, open_timeseries
from iot.demo_rules import install_demo_rules
from iot.service import build_daemon
from registry.auth import BOOTSTRAP_ACTOR
from registry.db import make_engine, migrate
from registry.deadletters import DeadLetterStore
from registry.devices import provision_fleet
from registry.models import Alert, AlertRule, Device
from simulators.fleet import FleetConfig
from simulators.manifest import Manifest
from simulators.runner import run_fleet

TS_KINDS = (Kind.TELEMETRY, Kind.METRICS, Kind.EVENTS)
DOC_KINDS = (Kind.CONFIG, Kind.FIRMWARE, Kind.MAINTENANCE)
SITES = ("plant-north", "plant-south", "warehouse-east")
PLOT_FIELD = "temperature"


@dataclass(frozen=True)
class DemoProgress:
    """A snapshot while the demo runs."""

    phase: str  # "sending" | "settling"
    elapsed: float
    received: int  # messages the daemon handled
    rate: float  # of those, per second since the last snapshot
    written: Mapping[str, int]  # items written per store
    dead_lettered: int
    alerts_opened: int
    expected: int | None = None  # messages acknowledged to the fleet, once it is done


@dataclass(frozen=True)
class AlertFired:
    id: int
    rule: str
    severity: str
    status: str
    message: str
    opened_ns: int


@dataclass(frozen=True)
class Highlight:
    """One device's temperature over the run and the alerts that fired on it."""

    device_id: str
    device_type: str
    site: str | None
    field: str
    points: list[tuple[int, float]]
    alerts: list[AlertFired]


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
    expected_messages: int = 0
    handled_messages: int = 0
    settled: bool = True
    fleet: dict[str, int] = field(default_factory=dict)  # devices per "type @ site"
    highlight: Highlight | None = None
    metrics_text: str = ""  # the daemon's /metrics at the end of the run

    @property
    def complete(self) -> bool:
        return self.settled and self.sent == self.stored and self.dead_lettered == self.malformed_sent


# -- pure accounting ----------------------------------------------------------------------------


def acknowledged_messages(manifest: Manifest) -> int:
    """Every publish the broker acknowledged to the fleet: first copies, malformed and duplicates."""
    return sum(manifest.totals.messages.values()) + len(manifest.malformed) + manifest.duplicates


def handled_messages(counts: Mapping[tuple[str, str], int]) -> int:
    """Deliveries the daemon's router took, from its ``(kind|reason, outcome)`` counts.

    A store rejection dead-letters a message the router already counted as received, so those
    are left out to count each delivery once.
    """
    return sum(
        n
        for (what, outcome), n in counts.items()
        if outcome == "received" or (outcome == "dead_lettered" and what != Reason.STORE_REJECTED)
    )


# -- the run ------------------------------------------------------------------------------------


def run_demo(
    settings: Settings,
    *,
    duration: float,
    devices: int,
    rate: float,
    seed: int,
    progress: Callable[[DemoProgress], None] | None = None,
    settle_timeout: float | None = None,
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
    config = FleetConfig(
        devices=devices,
        rate=rate,
        duration=duration,
        seed=seed,
        malformed=0.02,
        duplicates=0.02,
        start_ms=int(time.time() * 1000),
    )
    engine = make_engine(s.resolved_registry_url())
    migrate(engine)
    install_demo_rules(engine)
    fleet = provision_demo_fleet(engine, config)
    broker = EmbeddedBroker("127.0.0.1", port).start()
    watcher: _Watcher | None = None
    try:
        daemon = build_daemon(s)
        daemon.start()
        deadline = time.monotonic() + 15
        while not daemon.connected.wait(0.1):
            if time.monotonic() > deadline:
                raise RuntimeError("the daemon did not subscribe to the embedded broker")
        if progress is not None:
            watcher = _Watcher(daemon, engine, progress)
            watcher.start()
        manifest = run_fleet(config, f"mqtt://127.0.0.1:{port}")
        expected = acknowledged_messages(manifest)
        if watcher is not None:
            watcher.expected = expected
        timeout = settle_timeout if settle_timeout is not None else 30 + duration
        settled = wait_settled(daemon, expected, timeout)
        handled = handled_messages(daemon.message_counts)
        if watcher is not None:
            watcher.stop()
            watcher = None
        daemon.shutdown()
        metrics_text = daemon.metrics.render()
    finally:
        if watcher is not None:
            watcher.stop()
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
        highlight = pick_highlight(engine, ts, config.start_ms * 1_000_000)
    finally:
        ts.close()
        docs.close()
    result = DemoResult(
        sent,
        stored,
        len(manifest.malformed),
        DeadLetterStore(engine).count(),
        manifest.duplicates,
        _alert_counts(engine),
        str(data_dir),
        expected,
        handled,
        settled,
        fleet,
        highlight,
        metrics_text,
    )
    engine.dispose()
    return result


def wait_settled(daemon: Any, expected: int, timeout: float) -> bool:
    """Wait (up to ``timeout`` s) until the daemon handled ``expected`` deliveries and is idle.

    The embedded broker forwards acknowledged messages asynchronously, so a momentary idle is not
    the end; the manifest's count is.
    """
    deadline = time.monotonic() + timeout
    while True:
        if handled_messages(daemon.message_counts) >= expected and daemon.idle():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def provision_demo_fleet(engine: Any, config: Any) -> dict[str, int]:
    """Register the fleet's devices with their profile as type and a site (round-robin)."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    prefix = config.id_prefix.rstrip("-")
    with Session(engine) as session, session.begin():
        provision_fleet(session, BOOTSTRAP_ACTOR, config.devices, config.profiles, None, prefix)
        ids = [config.device_id(i) for i in range(config.devices)]
        fleet: dict[str, int] = {}
        for row in session.scalars(select(Device).where(Device.id.in_(ids))):
            row.site = SITES[ids.index(row.id) % len(SITES)]
            key = f"{row.type} @ {row.site}"
            fleet[key] = fleet.get(key, 0) + 1
    return dict(sorted(fleet.items()))


def pick_highlight(engine: Any, ts: Any, since_ns: int) -> Highlight | None:
    """The device with a temperature and the most alerts (ties: lowest id), its series and alerts."""
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        devices = list(session.scalars(select(Device).order_by(Device.id)))
        counts = dict(session.execute(select(Alert.device_id, func.count()).group_by(Alert.device_id)).all())
        candidates: list[tuple[int, str, Device, list[tuple[int, float]]]] = []
        for d in devices:
            rows = ts.query(
                SeriesQuery(MEASUREMENTS[Kind.TELEMETRY], d.id, since_ns - 60 * 10**9, field=PLOT_FIELD, limit=5000)
            )
            points = [(r.ts_ns, float(r.values[PLOT_FIELD])) for r in rows if PLOT_FIELD in r.values]
            if points:
                candidates.append((-int(counts.get(d.id, 0)), d.id, d, points))
        if not candidates:
            return None
        _, _, device, points = min(candidates, key=lambda c: (c[0], c[1]))
        alerts = [
            AlertFired(
                a.id, name, a.severity, a.status, a.message, int(_utc_ts(a.opened_at) * 1e9) if a.opened_at else 0
            )
            for a, name in session.execute(
                select(Alert, AlertRule.name)
                .join(AlertRule, AlertRule.id == Alert.rule_id)
                .where(Alert.device_id == device.id)
                .order_by(Alert.opened_at)
            ).all()
        ]
        return Highlight(device.id, device.type, device.site, PLOT_FIELD, points, alerts)


def _utc_ts(dt: Any) -> float:
    d = utc(dt)
    assert d is not None
    return d.timestamp()


def _alert_counts(engine: Any) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(select(Alert.status, func.count()).group_by(Alert.status)).all()
    return {status: n for status, n in rows}


class _Watcher:
    """Samples the daemon's counters twice a second for the live display; never raises."""

    def __init__(self, daemon: Any, engine: Any, report: Callable[[DemoProgress], None]) -> None:
        self.daemon, self.engine, self.report = daemon, engine, report
        self.expected: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-progress", daemon=True)
        self._t0 = time.monotonic()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sample()  # a last, final picture

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self._sample()

    _last: tuple[float, int] = (0.0, 0)

    def _sample(self) -> None:
        try:
            now = time.monotonic()
            counts = dict(self.daemon.message_counts)
            received = handled_messages(counts)
            t_prev, n_prev = self._last
            rate = (received - n_prev) / (now - t_prev) if t_prev and now > t_prev else 0.0
            self._last = (now, received)
            m = self.daemon.metrics
            written = {d: int(m.value("iot_items_written_total", dest=d)) for d in ("timeseries", "documents")}
            dead = sum(n for (_, outcome), n in counts.items() if outcome == "dead_lettered")
            self.report(
                DemoProgress(
                    "sending" if self.expected is None else "settling",
                    now - self._t0,
                    received,
                    rate,
                    written,
                    dead,
                    _opened(self.engine),
                    self.expected,
                )
            )
        except Exception as e:  # a display must never break the run
            logging.getLogger("iot.demo").debug("progress: %s", e)


def _opened(engine: Any) -> int:
    from sqlalchemy import func, select

    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Alert)).scalar_one())
