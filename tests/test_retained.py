"""Issue 7 item 7: a retained reading is stored once, not again on every restart of the daemon.

With a real Mosquitto: MQTT 5 (what `iot ingest run` speaks to real brokers) asks for retain
handling "do not send"; MQTT 3.1.1 (the embedded broker's protocol, forced here against
Mosquitto) ignores deliveries with the retain flag, which only replays of the retained store
carry. A retained publish made while the daemon is away still arrives once through the session.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from core.config import Settings
from ingest.daemon import Daemon
from ingest.mqtt.broker import BrokerAddress
from iot.service import build_daemon, build_resources
from tests.daemon_proc import DaemonProcess
from tests.faultkit import influx_query
from tests.servers import Mosquitto, wait_for

pytestmark = [pytest.mark.mosquitto, pytest.mark.influxd]


def publish(broker: Mosquitto, topic: str, payload: dict[str, float], retain: bool) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        info = client.publish(topic, json.dumps(payload).encode(), qos=1, retain=retain)
        info.wait_for_publish(10)
        assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def stored(url: str, device: str) -> int:
    res = influx_query(url, f'SELECT count("temperature") FROM sensor_readings WHERE "device_id"::tag = \'{device}\'')
    assert res is not None
    series = res["results"][0].get("series", [])
    return int(series[0]["values"][0][1]) if series else 0


class V5:
    """`iot ingest run` as a subprocess (MQTT 5)."""

    def __init__(self, tmp: Path, broker: Mosquitto, url: str, root: str) -> None:
        self.proc = DaemonProcess.on_root(tmp / "daemon", broker.url, root, timeseries=url)

    def start(self) -> None:
        self.proc.start()

    def stop(self) -> None:
        assert self.proc.terminate() == 0


class V311:
    """The daemon in-process speaking MQTT 3.1.1 (as it does to the embedded broker)."""

    def __init__(self, tmp: Path, broker: Mosquitto, url: str, root: str) -> None:
        self.settings = Settings(
            data_dir=tmp / "data",
            timeseries_url=url,
            client_id=f"ingest311-{root}",
            topic_root=root,
            flush_interval=0.2,
            metrics_port=0,
        )
        self.address = BrokerAddress("127.0.0.1", broker.port, embedded=True)  # embedded: MQTT 3.1.1
        self.daemon: Daemon | None = None

    def start(self) -> None:
        self.daemon = build_daemon(
            self.settings, build_resources(self.settings), with_alerts=False, broker=self.address
        )
        self.daemon.start()
        wait_for(self.daemon.connected.is_set, 15, "the daemon to subscribe")

    def stop(self) -> None:
        assert self.daemon is not None
        wait_for(self.daemon.idle, 15, "the daemon to settle everything")
        assert self.daemon.shutdown() == 0


@pytest.mark.parametrize("protocol", [V5, V311], ids=["mqtt5", "mqtt311"])
def test_retained_reading_is_not_stored_again_on_restart(
    tmp_path: Path, mosquitto_server: Mosquitto, influxdb1_url: str, protocol: type[V5] | type[V311]
) -> None:
    root = "ret" + uuid.uuid4().hex[:6]
    publish(mosquitto_server, f"{root}/old/telemetry", {"temperature": 1.0}, retain=True)  # before any session
    daemon = protocol(tmp_path, mosquitto_server, influxdb1_url, root)
    daemon.start()
    publish(mosquitto_server, f"{root}/live/telemetry", {"temperature": 2.0}, retain=True)
    wait_for(lambda: stored(influxdb1_url, "live") == 1, 30, "the live retained reading")
    daemon.stop()
    publish(mosquitto_server, f"{root}/away/telemetry", {"temperature": 3.0}, retain=True)  # queued in the session
    for restart in range(2):
        daemon.start()
        sentinel = f"sentinel{restart}"
        publish(mosquitto_server, f"{root}/{sentinel}/telemetry", {"temperature": 9.0}, retain=False)
        wait_for(lambda s=sentinel: stored(influxdb1_url, s) == 1, 30, "the sentinel reading")  # type: ignore[misc]
        wait_for(lambda: stored(influxdb1_url, "away") >= 1, 30, "the reading published while away")
        daemon.stop()
    counts = {d: stored(influxdb1_url, d) for d in ("old", "live", "away")}
    assert counts == {"old": 0, "live": 1, "away": 1}
