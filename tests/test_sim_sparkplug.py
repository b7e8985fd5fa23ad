"""`iot sim run --format sparkplug_b`: edge nodes with devices (births with aliases, alias-only data,
deaths on a clean stop, rebirth on NCMD) whose manifest counts exactly what the pipeline stores."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select

from core.model import Bundle, Point
from ingest.decoding.decode import Decoder
from ingest.decoding.sparkplug import sparkplug_rules
from ingest.decoding.sparkplug.encode import rebirth_command
from ingest.decoding.sparkplug.proto import payload_class
from ingest.decoding.sparkplug.state import MemoryState, NoRebirths
from ingest.decoding.topics import ContractTopics, Topics
from ingest.stores import open_timeseries
from registry.db import make_engine, migrate
from registry.deadletters import DeadLetterStore
from registry.models import Device
from simulators.fleet import FleetConfig, Message, plan
from simulators.runner import parse_broker_url, run_fleet
from simulators.sparkplug import SparkplugNode
from tests.daemon_proc import DaemonProcess
from tests.servers import Mosquitto, wait_for

START_MS = 1_764_028_800_000


def decoder() -> Decoder:
    return Decoder(topics=Topics([ContractTopics(), *sparkplug_rules(MemoryState(), NoRebirths())]))


def stored(d: Decoder, msg: Message) -> int:
    """Field values the decoder makes of ``msg`` (what lands in the time-series store)."""
    out = d.decode(msg.topic, msg.payload, (START_MS + 3_600_000) * 1_000_000)
    points = out.points if isinstance(out, Bundle) else out
    assert isinstance(points, list), out
    return sum(len(p.fields) for p in points if isinstance(p, Point))


def test_births_name_alias_only_data_and_deaths_carry_the_birth_bdseq() -> None:
    config = FleetConfig(devices=1, count=4, rate=1.0, format="sparkplug_b", node_devices=2, start_ms=START_MS)
    config.validate()
    node = SparkplugNode(config, plan(config)[0])
    stream = node.stream(config.slots)
    msgs = [next(stream) for _ in range(3 + 3)]  # slot 0: NBIRTH + 2 DBIRTH; slot 1: NDATA + 2 DDATA
    assert [m.sparkplug for m in msgs] == ["NBIRTH", "DBIRTH", "DBIRTH", "NDATA", "DDATA", "DDATA"]
    assert msgs[1].topic == "spBv1.0/sim/DBIRTH/sim-0000/d0" and msgs[1].device_id == "sim:sim-0000:d0"
    parsed = [payload_class().FromString(m.payload) for m in msgs]
    assert [p.seq for p in parsed] == [0, 1, 2, 3, 4, 5]
    assert all(m.name and m.HasField("alias") for m in parsed[1].metrics)
    assert all(not m.name and m.HasField("alias") for p in parsed[3:] for m in p.metrics)
    d = decoder()
    assert [stored(d, m) for m in msgs] == [m.readings for m in msgs]
    node.request_rebirth()
    rest = list(stream)  # slot 1 was generated; slots 2 (births again) and 3 follow
    assert [m.sparkplug for m in rest] == ["NBIRTH", "DBIRTH", "DBIRTH", "NDATA", "DDATA", "DDATA"]
    reborn = payload_class().FromString(rest[0].payload)
    assert reborn.seq == 0 and [m.long_value for m in reborn.metrics if m.name == "bdSeq"] == [0]
    assert [stored(d, m) for m in rest] == [m.readings for m in rest]
    deaths = node.stop()
    assert [m.sparkplug for m in deaths] == ["DDEATH", "DDEATH", "NDEATH"]
    for m in deaths:
        out = d.decode(m.topic, m.payload, START_MS * 1_000_000)
        assert isinstance(out, Bundle) and out.status and not any(s.online for s in out.status)
    with pytest.raises(ValueError, match="apply to the built-in contract"):
        FleetConfig(count=1, format="sparkplug_b", duplicates=0.1).validate()


def _watch(url: str, prefix: str, on_message: object) -> mqtt.Client:
    a = parse_broker_url(url)
    subscribed = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"w-{uuid.uuid4().hex[:8]}")
    c.on_connect = lambda cl, u, f, rc, p: cl.subscribe("spBv1.0/sim/#", qos=1)
    c.on_subscribe = lambda cl, u, mid, rc, p: subscribed.set()
    c.on_message = on_message  # type: ignore[assignment]
    c.connect(a.host, a.port)
    c.loop_start()
    wait_for(subscribed.is_set, 10, "the subscription")
    return c


@pytest.mark.mosquitto
def test_a_node_rebirths_on_ncmd(mosquitto_server: Mosquitto) -> None:
    prefix = f"r{uuid.uuid4().hex[:6]}-"
    config = FleetConfig(devices=2, count=40, rate=20.0, format="sparkplug_b", id_prefix=prefix, node_devices=1)
    types: list[str] = []
    asked = threading.Event()

    def on_message(c: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
        kind, edge = m.topic.split("/")[2:4]
        if not edge.startswith(prefix) or kind == "NCMD":
            return
        types.append(kind)
        if kind == "DDATA" and f"/{prefix}0000/" in m.topic and not asked.is_set():
            asked.set()
            c.publish(f"spBv1.0/sim/NCMD/{prefix}0000", rebirth_command(0), qos=1)

    watcher = _watch(mosquitto_server.url, prefix, on_message)
    try:
        manifest = run_fleet(config, mosquitto_server.url)
        wait_for(lambda: len(types) >= manifest.sent, 30, "every message at the watcher")
    finally:
        watcher.loop_stop()
    assert manifest.unacked == 0 and asked.is_set()
    # node 0 was born twice (it was asked), node 1 once; each stopped cleanly with its deaths
    assert manifest.sparkplug == {"NBIRTH": 3, "DBIRTH": 3, "NDATA": 77, "DDATA": 77, "DDEATH": 2, "NDEATH": 2}
    assert sorted(types) == sorted(k for k, n in manifest.sparkplug.items() for _ in range(n))


@pytest.mark.mosquitto
@pytest.mark.postgres
@pytest.mark.influxd
def test_a_simulated_sparkplug_fleet_lands_with_exact_counts(
    tmp_path: Path, mosquitto_server: Mosquitto, influxdb1_url: str, postgres_url: str
) -> None:
    migrate(postgres_url)
    engine = make_engine(postgres_url)
    prefix = f"e{uuid.uuid4().hex[:6]}-"
    daemon = DaemonProcess(
        tmp_path / "daemon",
        {
            "IOT_BROKER_URL": mosquitto_server.url,
            "IOT_TIMESERIES_URL": influxdb1_url,
            "IOT_REGISTRY_URL": postgres_url,
            "IOT_DOCUMENTS_URL": "embedded",
            "IOT_CLIENT_ID": f"ingest-{prefix}",
            "IOT_TOPIC_ROOT": f"{prefix}root",
            "IOT_SPARKPLUG": "1",
            "IOT_SPARKPLUG_HOST_ID": f"{prefix}host",
        },
    ).start()
    ts = open_timeseries(influxdb1_url)
    ts.connect()
    start_ms = (int(time.time()) - 600) * 1000  # in the past: no future timestamps
    config = FleetConfig(
        devices=3, count=12, rate=0.0, format="sparkplug_b", id_prefix=prefix, node_devices=2, start_ms=start_ms
    )
    try:
        wait_for(lambda: daemon.metrics().get("iot_broker_subscribed") == 1.0, 30, "the daemon's subscription")
        manifest = run_fleet(config, mosquitto_server.url)
        assert manifest.unacked == 0
        expected = {d: e.tally.readings["telemetry"] for d, e in manifest.devices.items()}
        assert len(expected) == 3 + 6 and all(n > 0 for n in expected.values())

        def counts() -> dict[str, int]:
            return {d: ts.count("sensor_readings", d) for d in expected}

        try:
            wait_for(lambda: counts() == expected, 60, "the fleet's readings in influxd")
        except TimeoutError:
            dl = [(x.reason, x.detail) for x in DeadLetterStore(engine).list()]
            raise AssertionError(f"{counts()} != {expected}; {dl}; {daemon.output()[-2000:]}") from None

        def online() -> dict[str, bool]:
            with engine.connect() as conn:
                return {r.id: r.online for r in conn.execute(select(Device.id, Device.online)) if r.id in expected}

        wait_for(lambda: len(online()) == 9 and not any(online().values()), 30, "every node and device offline")
        assert DeadLetterStore(engine).list() == []
    finally:
        daemon.kill()
        engine.dispose()
