"""Issue 7 item 8: one device cannot blow up the schema or tag cardinality everyone shares.

Per message: at most ``max_fields`` fields and ``max_units`` distinct units (TOO_MANY_FIELDS).
Per device: at most N new field names and M new units per window (CARDINALITY_LIMIT). And
``latest()`` on influxd reads only the device's own fields, however many the measurement has.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from core.model import Point, Reason, Rejected
from ingest.decoding.cardinality import CardinalityGuard
from ingest.decoding.decode import Decoder
from ingest.stores.influxdb1 import InfluxDB1Store
from ingest.stores.influxql import InfluxQLReader
from registry.db import make_engine, migrate
from registry.deadletters import DeadLetterStore
from tests.daemon_proc import DaemonProcess
from tests.faultkit import influx_query, publish_raw
from tests.servers import Mosquitto, wait_for

S = 10**9
NOW = 1_764_000_000 * S
M = "sensor_readings"


def pts(*fields: str, unit: str | None = None, device: str = "d") -> list[Point]:
    return [Point(M, device, dict.fromkeys(fields, 1.0), NOW, {"unit": unit} if unit else {})]


def refused(guard: CardinalityGuard, points: list[Point], now: int = NOW) -> str | None:
    try:
        guard.admit(points[0].device_id, points, now)
    except Rejected as e:
        assert e.reason is Reason.CARDINALITY_LIMIT
        return e.detail
    return None


def test_new_field_budget_per_device_and_window() -> None:
    g = CardinalityGuard(max_new_fields=5, max_new_units=2, window_s=60)
    assert refused(g, pts("a", "b", "c")) is None
    assert refused(g, pts("a", "b", "c")) is None  # known keys are free
    detail = refused(g, pts("d", "e", "f"))
    assert detail is not None and "3 new field names" in detail and "may add 5 per 60 s" in detail
    assert refused(g, pts("d", "e")) is None  # the refused message taught nothing: 3 + 2 = 5
    assert refused(g, pts("g")) is not None
    assert refused(g, pts("g", device="other")) is None  # budgets are per device
    assert refused(g, pts("g"), NOW + 60 * S) is None  # a new window
    assert refused(g, [Point("device_metrics", "d", {"a": 1.0}, NOW)], NOW + 60 * S) is None  # per measurement
    assert g._devices["d"].new_fields == 2


def test_new_unit_budget() -> None:
    g = CardinalityGuard(max_new_fields=100, max_new_units=2, window_s=60)
    assert refused(g, pts("t", unit="Cel") + pts("t", unit="V")) is None
    detail = refused(g, pts("t", unit="A"))
    assert detail is not None and "1 new units" in detail
    assert refused(g, pts("t", unit="Cel")) is None


def test_memory_is_bounded() -> None:
    g = CardinalityGuard(max_new_fields=10**6, max_new_units=10**6, max_devices=3, max_known=4)
    for i in range(10):
        g.admit(f"d{i}", pts(*[f"f{j}" for j in range(8)], device=f"d{i}"), NOW)
    assert len(g._devices) == 3 and all(len(d.fields[M]) == 4 for d in g._devices.values())


def test_decoder_applies_the_guard() -> None:
    dec = Decoder(guard=CardinalityGuard(max_new_fields=3, max_new_units=1))
    dec.decode("devices/d/telemetry", b'{"a": 1, "b": 2}', NOW)
    with pytest.raises(Rejected) as e:
        dec.decode("devices/d/telemetry", b'{"c": 1, "e": 2}', NOW)
    assert e.value.reason is Reason.CARDINALITY_LIMIT
    with pytest.raises(Rejected) as e:
        dec.decode(
            "devices/d/metrics", json.dumps([{"n": "x", "u": "V", "v": 1}, {"n": "y", "u": "A", "v": 1}]).encode(), NOW
        )
    assert e.value.reason is Reason.CARDINALITY_LIMIT


def senml_units(prefix: str, n: int) -> bytes:
    return json.dumps([{"n": "t", "u": f"{prefix}{i}", "v": i} for i in range(n)]).encode()


@pytest.mark.mosquitto
@pytest.mark.influxd
def test_cardinality_attacks_are_dead_lettered(tmp_path: Path, mosquitto_server: Mosquitto, influxdb1_url: str) -> None:
    registry = f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    migrate(registry)
    root = "card" + uuid.uuid4().hex[:6]
    daemon = DaemonProcess.on_root(
        tmp_path / "daemon", mosquitto_server.url, root, timeseries=influxdb1_url, registry=registry
    ).start()
    t = f"{root}/attk/telemetry"
    messages = [(t, senml_units("x", 1000))]  # 1000 distinct units in one pack
    messages += [(t, senml_units(f"p{k}u", 16)) for k in range(10)]  # 16 new units each: only the first fits
    messages.append((t, json.dumps({f"f{i}": 1 for i in range(20_000)}).encode()))  # 20,000 fields
    messages += [(t, json.dumps({f"g{k}_{i}": 1 for i in range(60)}).encode()) for k in range(3)]  # 60 new each
    messages.append((f"{root}/victim/telemetry", b'{"temperature": 20.5}'))
    letters = DeadLetterStore(make_engine(registry))
    try:
        publish_raw(mosquitto_server.url, messages)
        wait_for(lambda: letters.count() >= 13, 60, "the excess to be dead-lettered")
        wait_for(lambda: daemon.metrics().get("iot_unacked_messages") == 0.0, 30, "every message settled")
    finally:
        assert daemon.terminate() == 0
    reasons = Counter(d.reason for d in letters.list(limit=100))
    assert reasons == {"too_many_fields": 2, "cardinality_limit": 11}
    units = influx_query(influxdb1_url, f'SHOW TAG VALUES FROM {M} WITH KEY = "unit"')
    assert units is not None
    assert sorted(v[1] for s in units["results"][0]["series"] for v in s["values"]) == sorted(
        f"p0u{i}" for i in range(16)
    )
    keys = influx_query(influxdb1_url, f"SHOW FIELD KEYS FROM {M}")
    assert keys is not None
    got = {v[0] for s in keys["results"][0]["series"] for v in s["values"]}
    assert got == {"t", "temperature", *(f"g0_{i}" for i in range(60))}


@pytest.mark.influxd
def test_latest_reads_only_the_devices_own_fields(influxdb1_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = InfluxDB1Store.from_url(influxdb1_url)
    store.connect()
    try:
        base = time.time_ns() - 3600 * S
        wide = Point(M, "attk", {f"k{i}": float(i) for i in range(5000)}, base)
        own = [
            Point(M, "victim", {"temperature": 20.5, "door": "open"}, base),
            Point(M, "victim", {"temperature": 21.5}, base + S),
            Point("device_metrics", "victim", {"battery": 80.0}, base),
        ]
        assert store.write([wide, *own]) == []
        statements: list[str] = []
        real = store._select

        def spy(q: str, db: str | None = "") -> dict[str, Any]:
            statements.append(q)
            return real(q, db)

        monkeypatch.setattr(store, "_select", spy)
        store._reader = InfluxQLReader(store._select)
        assert store.latest(M, "victim") == {"temperature": (base + S, 21.5), "door": (base, "open")}
        assert len(statements) == 3  # the index, then one per own field: not one per key of the measurement
        assert not any("k1" in s for s in statements)
        assert store.latest("device_metrics", "victim") == {"battery": (base, 80.0)}
        assert store.latest(M, "nobody") == {}
    finally:
        store.close()
