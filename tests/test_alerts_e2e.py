"""A temperature spike travels device → Mosquitto → `iot ingest run` → the alert engine → PostgreSQL:
an alert opens, an operator acknowledges it from the CLI, and it resolves itself once the signal
is back to normal (past the hysteresis band)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from functools import partial
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy.orm import Session

from ingest.metrics import parse_prometheus
from registry.alerts import store
from registry.alerts.rules import Rule, RuleKind
from registry.auth import BOOTSTRAP_ACTOR
from registry.db import make_engine, migrate
from registry.devices import add_device
from tests.daemon_proc import DaemonProcess
from tests.servers import Mosquitto, wait_for

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres]


def alerts(url: str) -> list[store.AlertDetail]:
    engine = make_engine(url)
    try:
        with Session(engine) as s:
            return [store.show_alert(s, BOOTSTRAP_ACTOR, a.id) for a in store.list_alerts(s, BOOTSTRAP_ACTOR)]
    finally:
        engine.dispose()


def served(daemon: DaemonProcess, k: int) -> dict[str, float]:
    """Metrics of process ``k`` of a supervised daemon (port + k; the evaluator is after the workers)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{daemon.port + k}/metrics", timeout=2) as r:
            return parse_prometheus(r.read().decode())
    except OSError:
        return {}


def subscribed(daemon: DaemonProcess, k: int) -> bool:
    return served(daemon, k).get("iot_broker_subscribed") == 1.0


@pytest.mark.parametrize("workers", [1, 3])
def test_spike_raises_alert_ack_then_auto_resolve(
    tmp_path: Path, mosquitto_server: Mosquitto, postgres_url: str, workers: int
) -> None:
    """With 3 workers the stream is spread over them, but one alert evaluator (its own session) sees
    every message of the device in order: the same alert timeline as one worker. With 3 workers the
    evaluator is also killed mid-way: restarted, it gets what it missed from its persistent session."""
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
            "IOT_CLIENT_ID": f"ingest-alerts-e2e-{workers}",
            "IOT_TOPIC_ROOT": f"{root}{workers}",
            "IOT_WORKERS": str(workers),
            "IOT_OFFLINE_CHECK_INTERVAL": "0.5",
        },
    ).start()
    if workers > 1:  # every worker and the evaluator (metrics port + workers) subscribed: the stream is spread
        for k in range(workers + 1):
            wait_for(partial(subscribed, daemon, k), 60, f"process {k} to subscribe")
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
            pub.publish(f"{root}{workers}/oven-1/telemetry", payload, qos=1).wait_for_publish(10)

    try:
        send(20, 21, 95, 96, 97, 98)  # breach held from step 2 to 4: opens at 4, updated at 5
        wait_for(lambda: any(a.count >= 2 for a in alerts(postgres_url)), 60, "the spike to raise an alert")
        [a] = alerts(postgres_url)
        assert (a.status, a.severity, a.site, a.rule) == ("open", "critical", "plant-a", "oven-hot")
        assert (a.count, a.last_value) == (2, 98)
        assert a.device_id == "oven-1"

        env = {**os.environ, "IOT_REGISTRY_URL": postgres_url}
        env.pop("IOT_API_KEY", None)
        ack = subprocess.run(
            [sys.executable, "-m", "iot", "alerts", "ack", str(a.id), "--note", "opening the door"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        assert ack.returncode == 0, ack.stderr
        assert alerts(postgres_url)[0].status == "acknowledged"

        if workers > 1:  # the evaluator dies; what is sent meanwhile waits in its session
            pid = int(re.findall(r"alert evaluator started \(pid (\d+)", daemon.output())[0])
            os.kill(pid, signal.SIGKILL)
        send(78, 76)  # under 80, still inside the 5-degree band: stays acknowledged
        send(99)  # breaches again: counted on the same alert
        wait_for(lambda: alerts(postgres_url)[0].count == 3, 60, "the repeat to be counted")
        send(60)  # well back: resolves itself
        wait_for(lambda: alerts(postgres_url)[0].status == "resolved", 60, "the alert to auto-resolve")
    finally:
        pub.loop_stop()
        pub.disconnect()
        acked = [served(daemon, k).get("iot_messages_acked_total", 0) for k in range(workers)]
        rc = daemon.terminate()
    assert rc == 0, daemon.output()[-3000:]
    assert all(n > 0 for n in acked), f"every worker took a share of the device's messages: {acked}"
    if workers > 1:
        assert daemon.output().count("alert evaluator started") == 2, "the killed evaluator was restarted"
    [a] = alerts(postgres_url)
    assert (a.resolved_by, a.last_value, a.count) == ("system", 99, 3)
    assert [(e.action, e.actor) for e in a.timeline] == [
        ("opened", "system"),
        ("acknowledged", "local-admin"),
        ("auto_resolved", "system"),
    ]
    assert a.timeline[1].note == "opening the door"
    assert a.timeline[2].value == 60
