"""Sparkplug B through real Mosquitto into influxd 1.x and PostgreSQL: a daemon restart between births
and data still names every metric (the births are kept in the registry), an unknown alias is a
dead letter and a rebirth NCMD a subscriber sees, NDEATH takes the node's devices offline, and the
host application's STATE is retained."""

from __future__ import annotations

import json
import threading
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select

from core.stores import SeriesQuery
from ingest.decoding.sparkplug.encode import MetricValue, encode, requests_rebirth
from ingest.decoding.sparkplug.proto import DataType as T
from ingest.metrics import parse_prometheus
from ingest.stores import open_timeseries
from registry.db import make_engine, migrate
from registry.deadletters import DeadLetterStore
from registry.models import Device, SparkplugBirth
from tests.daemon_proc import DaemonProcess
from tests.faultkit import metric
from tests.servers import Mosquitto, wait_for

G, E = "spe2e", "edge1"
DEVICES = ["pump", "fan"]


def client(url: str, client_id: str) -> mqtt.Client:
    host, port = url.removeprefix("mqtt://").split(":")
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    c.connect(host, int(port))
    c.loop_start()
    return c


def publish(c: mqtt.Client, topic: str, payload: bytes) -> None:
    c.publish(topic, payload, qos=1).wait_for_publish(10)


def test_sparkplug_restart_unknown_alias_and_death(
    tmp_path: Path, mosquitto_server: Mosquitto, influxdb1_url: str, postgres_url: str
) -> None:
    migrate(postgres_url)
    engine = make_engine(postgres_url)
    daemon = DaemonProcess(
        tmp_path / "daemon",
        {
            "IOT_BROKER_URL": mosquitto_server.url,
            "IOT_TIMESERIES_URL": influxdb1_url,
            "IOT_REGISTRY_URL": postgres_url,
            "IOT_DOCUMENTS_URL": "embedded",
            "IOT_CLIENT_ID": "ingest-spe2e",
            "IOT_TOPIC_ROOT": "spe2e-root",
            "IOT_SPARKPLUG": "1",
            "IOT_SPARKPLUG_HOST_ID": "spe2e-host",
        },
    ).start()
    edge = client(mosquitto_server.url, "spe2e-edge")
    seen: dict[str, bytes] = {}
    got = threading.Event()

    def on_message(c: mqtt.Client, userdata: object, m: mqtt.MQTTMessage) -> None:
        seen[m.topic] = bytes(m.payload)
        got.set()

    watcher = client(mosquitto_server.url, "spe2e-watch")
    watcher.on_message = on_message
    watcher.subscribe([(f"spBv1.0/{G}/NCMD/{E}", 1), ("spBv1.0/STATE/spe2e-host", 1)])
    ts = open_timeseries(influxdb1_url)
    ts.connect()
    try:
        wait_for(lambda: "spBv1.0/STATE/spe2e-host" in seen, 30, "the host's STATE birth")
        state = json.loads(seen["spBv1.0/STATE/spe2e-host"])
        assert state["online"] is True and isinstance(state["timestamp"], int)
        publish(edge, f"spBv1.0/{G}/NBIRTH/{E}", encode([MetricValue(T.INT64, 4, name="bdSeq")], seq=0))
        for i, d in enumerate(DEVICES):
            metrics = [
                MetricValue(T.DOUBLE, 0.0, name="Sensors/temp C", alias=1),
                MetricValue(T.INT16, 0, name="Sensors/level", alias=2),
            ]
            publish(edge, f"spBv1.0/{G}/DBIRTH/{E}/{d}", encode(metrics, seq=1 + i))

        def births() -> int:
            with engine.connect() as conn:
                return int(conn.execute(select(func.count()).select_from(SparkplugBirth)).scalar_one())

        wait_for(lambda: births() == 3, 30, "the births kept in the registry")
        assert daemon.terminate() == 0
        daemon.start()  # a new process: the data below is named only by the kept births
        for n in range(5):
            for d in DEVICES:
                values = [MetricValue(T.DOUBLE, 20.0 + n, alias=1), MetricValue(T.INT16, -n, alias=2)]
                publish(
                    edge, f"spBv1.0/{G}/DDATA/{E}/{d}", encode(values, seq=3 + n, timestamp_ms=1_764_000_000_000 + n)
                )
        ids = [f"{G}:{E}:{d}" for d in DEVICES]
        # births (one point each) and 5 data points per device, 2 fields each: count() counts values
        try:
            wait_for(lambda: all(ts.count("sensor_readings", i) == 12 for i in ids), 60, "the readings in influxd")
        except TimeoutError:
            counts = {i: ts.count("sensor_readings", i) for i in ids}
            dl = [(x.reason, x.detail) for x in DeadLetterStore(engine).list()]
            raise AssertionError(f"{counts} {dl} {daemon.output()[-3000:]}") from None
        rows = ts.query(SeriesQuery("sensor_readings", ids[0], 0, field="Sensors.level"))
        assert sorted(r.values["Sensors.level"] for r in rows) == [-4.0, -3.0, -2.0, -1.0, 0.0, 0.0]
        rows = ts.query(SeriesQuery("sensor_readings", ids[1], 0, field="Sensors.temp_C"))
        assert sorted(r.values["Sensors.temp_C"] for r in rows) == [0.0, 20.0, 21.0, 22.0, 23.0, 24.0]
        # an alias no birth declared: dead-lettered, and the node is asked to rebirth
        got.clear()
        publish(edge, f"spBv1.0/{G}/DDATA/{E}/pump", encode([MetricValue(T.DOUBLE, 1.0, alias=77)], seq=9))
        letters = DeadLetterStore(engine)
        wait_for(lambda: len(letters.list(reason="unknown_alias")) == 1, 30, "the unknown_alias dead letter")
        wait_for(lambda: f"spBv1.0/{G}/NCMD/{E}" in seen, 30, "the rebirth request")
        assert requests_rebirth(seen[f"spBv1.0/{G}/NCMD/{E}"])
        assert ts.count("sensor_readings", ids[0]) == 12  # nothing stored under a made-up name

        def online() -> dict[str, bool]:
            with engine.connect() as conn:
                return {r.id: r.online for r in conn.execute(select(Device.id, Device.online))}

        wait_for(lambda: all(online().get(i) for i in [f"{G}:{E}", *ids]), 30, "node and devices online")
        publish(edge, f"spBv1.0/{G}/NDEATH/{E}", encode([MetricValue(T.INT64, 4, name="bdSeq")]))
        wait_for(lambda: not any(online().get(i) for i in [f"{G}:{E}", *ids]), 30, "node and devices offline")
    finally:
        edge.loop_stop()
        watcher.loop_stop()
        daemon.kill()
        engine.dispose()


def worker_metrics(daemon: DaemonProcess, k: int) -> dict[str, float]:
    """Worker ``k`` serves metrics on the daemon's port + k."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{daemon.port + k}/metrics", timeout=2) as r:
            return parse_prometheus(r.read().decode())
    except OSError:
        return {}


def test_three_workers_name_every_metric_from_births_another_worker_read(
    tmp_path: Path, mosquitto_server: Mosquitto, influxdb1_url: str, postgres_url: str
) -> None:
    """A shared subscription hands the births to some workers and the data to all three: the births
    kept in the registry name the data on every worker (an in-process state would dead-letter it)."""
    g = "spw3"
    migrate(postgres_url)
    engine = make_engine(postgres_url)
    daemon = DaemonProcess(
        tmp_path / "daemon",
        {
            "IOT_BROKER_URL": mosquitto_server.url,
            "IOT_TIMESERIES_URL": influxdb1_url,
            "IOT_REGISTRY_URL": postgres_url,
            "IOT_DOCUMENTS_URL": "embedded",
            "IOT_CLIENT_ID": "ingest-spw3",
            "IOT_TOPIC_ROOT": "spw3-root",
            "IOT_SPARKPLUG": "1",
            "IOT_SPARKPLUG_HOST_ID": "spw3-host",
            "IOT_WORKERS": "3",
        },
    ).start()
    edge = client(mosquitto_server.url, "spw3-edge")
    ts = open_timeseries(influxdb1_url)
    ts.connect()
    try:
        for w in range(3):

            def subscribed(w: int = w) -> bool:
                return worker_metrics(daemon, w).get("iot_broker_subscribed") == 1.0

            wait_for(subscribed, 60, f"worker {w} to subscribe")
        t0 = 1_764_000_000_000
        publish(
            edge, f"spBv1.0/{g}/NBIRTH/{E}", encode([MetricValue(T.INT64, 1, name="bdSeq")], seq=0, timestamp_ms=t0)
        )
        for i, d in enumerate(DEVICES):  # the two devices declare the same names under swapped aliases
            metrics = [
                MetricValue(T.DOUBLE, 0.0, name="Sensors/temp C", alias=1 + i),
                MetricValue(T.INT16, 0, name="Sensors/level", alias=2 - i),
            ]
            publish(edge, f"spBv1.0/{g}/DBIRTH/{E}/{d}", encode(metrics, seq=1 + i, timestamp_ms=t0 + 1))

        def births() -> int:
            with engine.connect() as conn:
                q = select(func.count()).select_from(SparkplugBirth).where(SparkplugBirth.node_id == f"{g}:{E}")
                return int(conn.execute(q).scalar_one())

        wait_for(lambda: births() == 3, 30, "the births kept in the registry")

        def acked() -> list[float]:
            return [metric(worker_metrics(daemon, k), "iot_messages_acked_total") for k in range(3)]

        wait_for(lambda: sum(acked()) == 3, 30, "the births acknowledged")
        acked_births = acked()
        n = 9
        for j in range(n):
            for i, d in enumerate(DEVICES):
                values = [MetricValue(T.DOUBLE, 20.0 + j, alias=1 + i), MetricValue(T.INT16, -j, alias=2 - i)]
                publish(edge, f"spBv1.0/{g}/DDATA/{E}/{d}", encode(values, seq=3 + j, timestamp_ms=t0 + 10 + j))
        ids = [f"{g}:{E}:{d}" for d in DEVICES]
        try:
            wait_for(lambda: all(ts.count("sensor_readings", i) == 2 * (n + 1) for i in ids), 60, "the readings")
        except TimeoutError:
            counts = {i: ts.count("sensor_readings", i) for i in ids}
            dl = [(x.reason, x.detail) for x in DeadLetterStore(engine).list()]
            raise AssertionError(f"{counts} {dl} {daemon.output()[-3000:]}") from None
        for dev in ids:
            rows = ts.query(SeriesQuery("sensor_readings", dev, 0, field="Sensors.level"))
            assert sorted(r.values["Sensors.level"] for r in rows) == sorted([0.0] + [-float(j) for j in range(n)])
            rows = ts.query(SeriesQuery("sensor_readings", dev, 0, field="Sensors.temp_C"))
            assert sorted(r.values["Sensors.temp_C"] for r in rows) == [0.0] + [20.0 + j for j in range(n)]
        wait_for(lambda: sum(acked()) == 3 + 2 * n, 30, "the data acknowledged")
        data = [a - b for a, b in zip(acked(), acked_births, strict=True)]
        assert all(a > 0 for a in data), f"every worker decoded data: {data}"
        assert DeadLetterStore(engine).list() == []
    finally:
        edge.loop_stop()
        daemon.kill()
        engine.dispose()
