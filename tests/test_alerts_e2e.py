"""A temperature spike travels device → Mosquitto → `iot ingest run` → the alert engine → PostgreSQL:
an alert opens, an operator acknowledges it from the CLI, and it resolves itself once the signal
is back to normal (past the hysteresis band)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy.orm import Session

from registry.alerts import store
from registry.alerts.rules import Rule, RuleKind
from registry.auth import BOOTSTRAP_ACTOR
from registry.db import make_engine, migrate
from registry.devices import add_device
from tests.daemon_proc import DaemonProcess
from tests.servers import Mosquitto, wait_for

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres]


def alerts(url: str) -> list[dict[str, Any]]:
    engine = make_engine(url)
    try:
        with Session(engine) as s:
            return [store.show_alert(s, BOOTSTRAP_ACTOR, a["id"]) for a in store.list_alerts(s, BOOTSTRAP_ACTOR)]
    finally:
        engine.dispose()


def test_spike_raises_alert_ack_then_auto_resolve(
    tmp_path: Path, mosquitto_server: Mosquitto, postgres_url: str
) -> None:
    migrate(postgres_url)
    engine = make_engine(postgres_url)
    with Session(engine) as s, s.begin():
        add_device(s, BOOTSTRAP_ACTOR, "oven-1", type="thermo", site="plant-a")
        store.add_rule(
            s,
            BOOTSTRAP_ACTOR,
            Rule(
                id=0,
                name="oven-hot",
                kind=RuleKind.THRESHOLD,
                severity="critical",
                field="temperature",
                op=">",
                threshold=80,
                hold_s=2,
                hysteresis=5,
                scope="site",
                scope_value="plant-a",
            ),
        )
    engine.dispose()
    root = "alrt"
    daemon = DaemonProcess(
        tmp_path / "daemon",
        {
            "IOT_BROKER_URL": mosquitto_server.url,
            "IOT_TIMESERIES_URL": "embedded",
            "IOT_DOCUMENTS_URL": "embedded",
            "IOT_REGISTRY_URL": postgres_url,
            "IOT_CLIENT_ID": "ingest-alerts-e2e",
            "IOT_TOPIC_ROOT": root,
            "IOT_OFFLINE_CHECK_INTERVAL": "0.5",
        },
    ).start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="oven-1")
    pub.connect("127.0.0.1", mosquitto_server.port)
    pub.loop_start()
    start = time.time() - 60
    step = [0]

    def send(*values: float) -> None:
        for v in values:
            ts_ms = int((start + step[0]) * 1000)
            step[0] += 1
            payload = json.dumps({"ts": ts_ms, "temperature": v})
            pub.publish(f"{root}/oven-1/telemetry", payload, qos=1).wait_for_publish(10)

    try:
        send(20, 21, 95, 96, 97, 98)  # breach held from step 2 to 4: opens at 4, updated at 5
        wait_for(lambda: any(a["count"] >= 2 for a in alerts(postgres_url)), 60, "the spike to raise an alert")
        [a] = alerts(postgres_url)
        assert (a["status"], a["severity"], a["site"], a["rule"]) == ("open", "critical", "plant-a", "oven-hot")
        assert (a["count"], a["last_value"]) == (2, 98)
        assert a["device_id"] == "oven-1"

        env = {**os.environ, "IOT_REGISTRY_URL": postgres_url}
        env.pop("IOT_API_KEY", None)
        ack = subprocess.run(
            [sys.executable, "-m", "iot", "alerts", "ack", str(a["id"]), "--note", "opening the door"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        assert ack.returncode == 0, ack.stderr
        assert alerts(postgres_url)[0]["status"] == "acknowledged"

        send(78, 76)  # under 80, still inside the 5-degree band: stays acknowledged
        send(99)  # breaches again: counted on the same alert
        wait_for(lambda: alerts(postgres_url)[0]["count"] == 3, 60, "the repeat to be counted")
        send(60)  # well back: resolves itself
        wait_for(lambda: alerts(postgres_url)[0]["status"] == "resolved", 60, "the alert to auto-resolve")
    finally:
        pub.loop_stop()
        pub.disconnect()
        rc = daemon.terminate()
    assert rc == 0, daemon.output()[-3000:]
    [a] = alerts(postgres_url)
    assert (a["resolved_by"], a["last_value"], a["count"]) == ("system", 99, 3)
    assert [(e["action"], e["actor"]) for e in a["timeline"]] == [
        ("opened", "system"),
        ("acknowledged", "local-admin"),
        ("auto_resolved", "system"),
    ]
    assert a["timeline"][1]["note"] == "opening the door"
    assert a["timeline"][2]["value"] == 60
