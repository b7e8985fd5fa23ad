"""The gateway boundary through the real daemon (issue 18): a mappings file names the gateway by a
topic level, and a device registered behind gateway A but published by gateway B is dead-lettered
``wrong_gateway`` with an audit entry; A's own messages for it are stored. Real Mosquitto, the real
``iot ingest run`` subprocess, a real PostgreSQL registry and influxd 1.x."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.model import MEASUREMENTS, Kind
from ingest.stores import open_timeseries
from registry.auth import BOOTSTRAP_ACTOR
from registry.db import make_engine, migrate
from registry.deadletters import DeadLetterStore
from registry.devices import add_device
from registry.gateways import add_gateway
from registry.models import AuditEntry
from tests.daemon_proc import DaemonProcess
from tests.servers import Influxd, Mosquitto, wait_for
from tests.test_mappings_e2e import publish_all

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres, pytest.mark.influxd]

MAPPINGS = """
[[mapping]]
topic = "bridges/{bridge}/{device}"
kind = "telemetry"
gateway = "{bridge}"
units = { temperature = "Cel" }
"""


def test_a_hostile_gateway_is_refused_and_audited(
    tmp_path: Path, mosquitto_server: Mosquitto, influxd_server: Influxd, influxdb1_url: str, postgres_url: str
) -> None:
    migrate(postgres_url)
    engine = make_engine(postgres_url)
    with Session(engine) as s:
        add_gateway(s, BOOTSTRAP_ACTOR, "bridge-a", "bridges/bridge-a")
        add_gateway(s, BOOTSTRAP_ACTOR, "bridge-b", "bridges/bridge-b")
        add_device(s, BOOTSTRAP_ACTOR, "kitchen", "thermo", gateway="bridge-a")
        s.commit()
    mappings = tmp_path / "mappings.toml"
    mappings.write_text(MAPPINGS)
    daemon = DaemonProcess.on_root(
        tmp_path / "daemon",
        mosquitto_server.url,
        "e2egw",
        timeseries=influxdb1_url,
        registry=postgres_url,
        IOT_MAPPINGS=str(mappings),
        IOT_UNKNOWN_DEVICES="register",
    ).start()
    ts = open_timeseries(influxdb1_url)
    ts.connect()
    letters = DeadLetterStore(engine)
    telemetry = MEASUREMENTS[Kind.TELEMETRY]
    try:
        publish_all(
            mosquitto_server,
            [
                ("bridges/bridge-b/kitchen", b'{"temperature": 99.0}'),  # B claims A's device
                ("bridges/bridge-b/kitchen", b'{"temperature": 98.0}'),
                ("bridges/bridge-a/kitchen", b'{"temperature": 21.5}'),  # A's own: stored
            ],
        )
        wait_for(
            lambda: ts.count(telemetry, "kitchen") == 1 and letters.count() == 2, 60, "the stored reading and 2 letters"
        )
        wait_for(lambda: daemon.metrics().get("iot_unacked_messages") == 0.0, 30, "every message acknowledged")

        def refused() -> list[AuditEntry]:
            with Session(engine) as s:
                return list(s.scalars(select(AuditEntry).where(AuditEntry.action == "gateway.refused")))

        wait_for(lambda: len(refused()) > 0, 30, "the audit entry")
    finally:
        rc = daemon.terminate()
    assert rc == 0, daemon.output()[-3000:]
    found = letters.list(limit=10)
    assert [(d.reason, d.topic, d.device_id) for d in found] == [
        ("wrong_gateway", "bridges/bridge-b/kitchen", "kitchen")
    ] * 2
    assert "behind gateway 'bridge-a', not behind gateway 'bridge-b'" in found[0].detail
    entries = refused()
    assert [(e.target, e.actor, e.detail["via"], e.detail["registered"]) for e in entries] == [
        ("device:kitchen", "iot-ingest", "bridge-b", "bridge-a")
    ]
    assert sum(e.detail["messages"] for e in entries) == 2
    assert ts.count(telemetry, "kitchen") == 1  # B's readings never reached the time series
    ts.close()
    engine.dispose()
