"""`iot sim run --format <firmware>`: each firmware's documented topics and payloads, with the
manifest's exact counts, and a run against a real broker counted by a subscriber."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from typing import cast

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from simulators.firmware import FIRMWARES
from simulators.fleet import FleetConfig, Format, generate
from simulators.runner import parse_broker_url, run_fleet
from tests.servers import Mosquitto, wait_for


def _run(fmt: str, profile: str = "thermostat", count: int = 3) -> list:  # type: ignore[type-arg]
    return list(
        generate(FleetConfig(devices=1, count=count, format=cast(Format, fmt), profiles=(profile,), start_ms=0))
    )


def test_tasmota() -> None:
    hello, sensor, _ = _run("tasmota")
    assert (hello.topic, hello.payload, hello.kind) == ("tele/sim-0000/LWT", b"Online", "status")
    assert sensor.topic == "tele/sim-0000/SENSOR"
    body = json.loads(sensor.payload)
    assert body["Time"] == "1970-01-01T00:00:01" and body["TempUnit"] == "C"  # local time, no offset
    assert set(body["AM2301"]) == {"Temperature", "Humidity", "Setpoint"} and sensor.readings == 3


def test_zigbee2mqtt() -> None:
    hello, reading, _ = _run("zigbee2mqtt")
    assert (hello.topic, json.loads(hello.payload)) == ("zigbee2mqtt/sim-0000/availability", {"state": "online"})
    body = json.loads(reading.payload)
    assert reading.topic == "zigbee2mqtt/sim-0000" and {"temperature", "humidity", "linkquality"} <= set(body)
    assert reading.readings == len(body) == 4


def test_shelly_gen2() -> None:
    hello, rpc, _ = _run("shelly_gen2", "energy")
    assert (hello.topic, hello.payload) == ("sim-0000/online", b"true")
    body = json.loads(rpc.payload)
    assert rpc.topic == "sim-0000/events/rpc"
    assert (body["src"], body["dst"], body["method"]) == ("sim-0000", "sim-0000/events", "NotifyStatus")
    switch = body["params"]["switch:0"]
    assert switch["id"] == 0 and body["params"]["ts"] == 1.0 and rpc.readings == len(switch) - 1


def test_esphome() -> None:
    msgs = _run("esphome", count=2)
    assert (msgs[0].topic, msgs[0].payload) == ("sim-0000/status", b"online")
    assert [m.topic for m in msgs[1:]] == [
        f"sim-0000/sensor/{n}/state" for n in ("temperature", "humidity", "setpoint")
    ]
    assert all(float(m.payload) == next(iter(m.points[0][1].values())) and m.readings == 1 for m in msgs[1:])


def test_ttn_v3() -> None:
    first, _ = _run("ttn_v3", count=2)
    assert first.topic == "v3/sim@ttn/devices/sim-0000/up" and first.kind == "telemetry"
    body = json.loads(first.payload)
    assert body["received_at"] == "1970-01-01T00:00:00.000000Z"
    assert set(body["uplink_message"]["decoded_payload"]) == {"temperature", "humidity", "setpoint"}
    assert all({"rssi", "snr"} <= set(g) for g in body["uplink_message"]["rx_metadata"])
    assert (first.readings, first.metric_readings) == (3, 2)


def test_faults_are_refused_for_firmware_formats() -> None:
    with pytest.raises(ValueError, match="apply to the built-in contract"):
        FleetConfig(count=1, format="tasmota", malformed=0.1).validate()
    with pytest.raises(ValueError, match="unknown format"):
        FleetConfig(count=1, format="modbus").validate()  # type: ignore[arg-type]


@pytest.mark.mosquitto
@pytest.mark.parametrize("fmt", FIRMWARES)
def test_manifest_counts_what_a_subscriber_received(mosquitto_server: Mosquitto, fmt: str) -> None:
    prefix = f"f{uuid.uuid4().hex[:8]}-"
    config = FleetConfig(
        devices=3, count=6, rate=0.0, format=cast(Format, fmt), id_prefix=prefix, profiles=("thermostat", "energy")
    )
    got: list[tuple[str, bytes]] = []
    lock, subscribed = threading.Lock(), threading.Event()
    a = parse_broker_url(mosquitto_server.url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4().hex}")
    client.on_connect = lambda c, u, f, rc, p: c.subscribe("#", qos=1)
    client.on_subscribe = lambda c, u, mid, rc, p: subscribed.set()

    def on_message(c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        if prefix in msg.topic:
            with lock:
                got.append((msg.topic, bytes(msg.payload)))

    client.on_message = on_message
    client.connect(a.host, a.port)
    client.loop_start()
    try:
        wait_for(subscribed.is_set, 10, "the subscription")
        manifest = run_fleet(config, mosquitto_server.url)
        wait_for(lambda: len(got) >= manifest.sent, 30, f"{manifest.sent} messages at the subscriber")
    finally:
        client.disconnect()
        client.loop_stop()
    expected = list(generate(config))
    assert manifest.unacked == 0 and manifest.sent == len(expected) == len(got)
    assert Counter(got) == Counter((m.topic, m.payload) for m in expected)
    totals = manifest.totals
    assert totals.messages["status"] == (0 if fmt == "ttn_v3" else 3)
    assert totals.messages["telemetry"] == len(expected) - totals.messages["status"]
    assert totals.readings["telemetry"] == sum(m.readings for m in expected) > 0
    assert totals.readings["metrics"] == (2 * totals.messages["telemetry"] if fmt == "ttn_v3" else 0)
