"""The whole path with real servers: simulator → Mosquitto → `iot ingest run` → influxd, PostgreSQL,
document store. Every reading in the manifest is stored, every malformed message dead-lettered:
nothing lost, nothing extra."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import pytest
from sqlalchemy import select

from core.model import COLLECTIONS, MEASUREMENTS, Kind
from core.stores import SeriesQuery
from ingest.stores import open_documents, open_timeseries
from registry.db import make_engine, migrate
from registry.deadletters import DeadLetterStore
from registry.models import Device
from simulators.fleet import FleetConfig
from simulators.runner import run_fleet
from tests.daemon_proc import DaemonProcess
from tests.servers import Influxd, Mosquitto, wait_for

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres, pytest.mark.influxd]

TS_KINDS = [Kind.TELEMETRY, Kind.METRICS, Kind.EVENTS]
DOC_KINDS = [Kind.CONFIG, Kind.FIRMWARE, Kind.MAINTENANCE]


def stored_readings(ts: Any, devices: list[str]) -> dict[str, dict[str, int]]:
    return {d: {k.value: ts.count(MEASUREMENTS[k], d) for k in TS_KINDS} for d in devices}


@pytest.mark.parametrize("fmt", ["json", "senml"])
def test_fleet_is_stored_exactly(
    tmp_path: Path,
    fmt: Literal["json", "senml"],
    mosquitto_server: Mosquitto,
    influxd_server: Influxd,
    influxdb1_url: str,
    postgres_url: str,
) -> None:
    migrate(postgres_url)
    data = tmp_path / "daemon" / "data"
    daemon = DaemonProcess(
        tmp_path / "daemon",
        {
            "IOT_BROKER_URL": mosquitto_server.url,
            "IOT_TIMESERIES_URL": influxdb1_url,
            "IOT_REGISTRY_URL": postgres_url,
            "IOT_DOCUMENTS_URL": "embedded",
            "IOT_CLIENT_ID": f"ingest-e2e-{fmt}",
            "IOT_TOPIC_ROOT": f"e2e{fmt}",
        },
    ).start()
    config = FleetConfig(
        devices=4,
        rate=0,
        count=150,
        seed=11,
        format=fmt,
        pack=5 if fmt == "senml" else 1,
        malformed=0.04,
        duplicates=0.03,
        topic_root=f"e2e{fmt}",
        id_prefix=f"{fmt}-",
    )
    try:
        manifest = run_fleet(config, mosquitto_server.url)
        assert manifest.unacked == 0 and not manifest.lost
        devices = list(manifest.devices)
        expected = {d: {k.value: e.tally.readings[k.value] for k in TS_KINDS} for d, e in manifest.devices.items()}
        ts = open_timeseries(influxdb1_url)
        ts.connect()
        engine = make_engine(postgres_url)
        dls = DeadLetterStore(engine)
        wait_for(
            lambda: stored_readings(ts, devices) == expected and dls.count() >= len(manifest.malformed),
            90,
            "every reading and dead letter to be stored",
            interval=0.5,
        )
    finally:
        rc = daemon.terminate()
    assert rc == 0, daemon.output()[-3000:]

    # nothing extra either: the exact per-device, per-kind counts still hold after shutdown
    assert stored_readings(ts, devices) == expected
    assert sum(expected[d]["telemetry"] for d in devices) > 0

    # spot checks: exact values at exact timestamps
    assert manifest.samples
    for sample in manifest.samples:
        q = SeriesQuery(
            MEASUREMENTS[Kind(sample["kind"])],
            sample["device_id"],
            since_ns=sample["ts_ns"],
            until_ns=sample["ts_ns"] + 1,
        )
        rows = [r.values for r in ts.query(q) if r.ts_ns == sample["ts_ns"]]
        stored = {k: v for row in rows for k, v in row.items() if v is not None}
        assert stored, sample
        for field, value in sample["fields"].items():
            assert stored.get(field) == (pytest.approx(value) if isinstance(value, float) else value), (sample, stored)

    # every malformed message is dead-lettered, with its raw bytes, exactly once
    letters = dls.list(limit=100_000)
    ts.close()
    assert len(letters) == len(manifest.malformed)
    for m in manifest.malformed:
        if m.get("id_in_payload", True):
            mark = re.compile(re.escape(m["id"].encode()) + rb"(?!\d)")  # mf-…-1 must not match mf-…-10
            assert sum(1 for letter in letters if mark.search(letter.payload)) == 1, m

    # documents: every config/firmware/maintenance message once (duplicates stored once)
    docs = open_documents("embedded", data_dir=data)
    docs.connect()
    try:
        with engine.connect() as conn:
            firmware = dict(conn.execute(select(Device.id, Device.firmware_version)).all())
        engine.dispose()
        for d in devices:  # the registry tracks each device's firmware from its reports
            reported = {doc["version"] for doc in docs.find(COLLECTIONS[Kind.FIRMWARE], d, limit=1000)}
            assert firmware[d] in reported, (d, firmware[d], reported)
        for kind in DOC_KINDS:
            for d, entry in manifest.devices.items():
                assert docs.count(COLLECTIONS[kind], d) == entry.tally.documents[kind.value], (kind, d)
        versions = [doc["version"] for doc in docs.find(COLLECTIONS[Kind.CONFIG], devices[0], limit=1000)]
        assert sorted(versions) == list(range(1, len(versions) + 1))
    finally:
        docs.close()
