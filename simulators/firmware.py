"""Simulated devices speaking existing firmwares' topics and payloads (pure, no I/O).

Each format publishes what that firmware documents, with the profile's numeric readings (a
firmware payload carries numbers: the profile's booleans are left out, so a reading count is
exact):

- ``tasmota``: ``tele/<id>/LWT`` ``Online`` first, then ``tele/<id>/SENSOR``
  ``{"Time": <local time, no offset>, "<Sensor>": {<Reading>: value, ...}, "TempUnit": "C"}``.
- ``zigbee2mqtt``: ``zigbee2mqtt/<id>/availability`` ``{"state":"online"}`` first, then
  ``zigbee2mqtt/<id>`` ``{<reading>: value, ..., "linkquality": n}`` (linkquality is a reading).
- ``shelly_gen2``: ``<id>/online`` ``true`` first, then ``<id>/events/rpc``
  ``{"src": id, "dst": "<id>/events", "method": "NotifyStatus", "params": {"ts": s, "switch:0":
  {"id": 0, <reading>: value, ...}}}`` (``id`` names the component: not a reading).
- ``esphome``: ``<id>/status`` ``online`` first, then one ``<id>/sensor/<reading>/state`` bare
  value per reading (each message one reading).
- ``ttn_v3``: ``v3/sim@ttn/devices/<id>/up`` uplinks: ``received_at`` (RFC 3339),
  ``uplink_message.decoded_payload`` (the readings) and ``rx_metadata[]`` with ``rssi``/``snr`` of
  two gateways (the best one's two values are metrics readings: ``metric_readings`` below).

A first message announcing the device is counted as ``status``; readings as ``telemetry``. Time
stamps follow the fleet clock (one slot per reading message, ESPHome's per-reading messages of one
slot share its time).
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

from simulators.profiles import Fields

FIRMWARES = ("tasmota", "zigbee2mqtt", "shelly_gen2", "esphome", "ttn_v3")
TTN_APP, TTN_TENANT = "sim", "ttn"
TASMOTA_SENSOR = {"thermostat": "AM2301", "energy": "ENERGY", "vibration": "MPU6050", "air_quality": "SCD40"}
METRIC_READINGS = {"ttn_v3": 2}  # rssi and snr of the best gateway, per uplink
"""Metrics readings a format's reading message carries besides its telemetry (for the manifest)."""


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def numbers(fields: Fields) -> dict[str, float]:
    """The numeric readings of a sample (what a firmware payload carries)."""
    return {k: v for k, v in fields.items() if type(v) is float}


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def _iso(ts_ns: int, offset: bool) -> str:
    dt = datetime.fromtimestamp(ts_ns / 1e9, UTC)
    if offset:
        return dt.isoformat(timespec="microseconds").replace("+00:00", "Z")
    return dt.replace(tzinfo=None).isoformat(timespec="seconds")


def announce(fmt: str, device_id: str) -> tuple[str, bytes] | None:
    """The topic and payload a device announces itself with (None: the format has none)."""
    return {
        "tasmota": (f"tele/{device_id}/LWT", b"Online"),
        "zigbee2mqtt": (f"zigbee2mqtt/{device_id}/availability", b'{"state":"online"}'),
        "shelly_gen2": (f"{device_id}/online", b"true"),
        "esphome": (f"{device_id}/status", b"online"),
    }.get(fmt)


def goodbye(fmt: str, device_id: str) -> tuple[str, bytes] | None:
    """What the broker publishes as the device's will when it drops offline (None: nothing)."""
    return {
        "tasmota": (f"tele/{device_id}/LWT", b"Offline"),
        "zigbee2mqtt": (f"zigbee2mqtt/{device_id}/availability", b'{"state":"offline"}'),
        "shelly_gen2": (f"{device_id}/online", b"false"),
        "esphome": (f"{device_id}/status", b"offline"),
    }.get(fmt)


def readings(
    fmt: str, device_id: str, profile: str, ts_ns: int, fields: dict[str, float], rng: random.Random
) -> list[tuple[str, bytes, int]]:
    """The messages carrying one sample: (topic, payload, telemetry readings in it); metrics
    readings besides (TTN's RSSI/SNR) are :data:`METRIC_READINGS`."""
    if fmt == "tasmota":
        sensor = {_camel(k): v for k, v in fields.items()}
        body: dict[str, Any] = {"Time": _iso(ts_ns, False), TASMOTA_SENSOR.get(profile, "SENSOR"): sensor}
        if profile == "thermostat":
            body["TempUnit"] = "C"
        return [(f"tele/{device_id}/SENSOR", _json(body), len(fields))]
    if fmt == "zigbee2mqtt":
        return [(f"zigbee2mqtt/{device_id}", _json({**fields, "linkquality": rng.randint(20, 255)}), len(fields) + 1)]
    if fmt == "shelly_gen2":
        body = {
            "src": device_id,
            "dst": f"{device_id}/events",
            "method": "NotifyStatus",
            "params": {"ts": round(ts_ns / 1e9, 2), "switch:0": {"id": 0, **fields}},
        }
        return [(f"{device_id}/events/rpc", _json(body), len(fields))]
    if fmt == "esphome":
        return [(f"{device_id}/sensor/{name}/state", repr(value).encode(), 1) for name, value in fields.items()]
    if fmt == "ttn_v3":
        rssi = [float(rng.randint(-120, -60)), float(rng.randint(-120, -60))]
        snr = [round(rng.uniform(-10, 12), 1), round(rng.uniform(-10, 12), 1)]
        body = {
            "end_device_ids": {"device_id": device_id, "application_ids": {"application_id": TTN_APP}},
            "received_at": _iso(ts_ns, True),
            "uplink_message": {
                "f_port": 1,
                "decoded_payload": fields,
                "rx_metadata": [
                    {"gateway_ids": {"gateway_id": f"gw-{i}"}, "rssi": rssi[i], "snr": snr[i]} for i in range(2)
                ],
            },
        }
        return [(f"v3/{TTN_APP}@{TTN_TENANT}/devices/{device_id}/up", _json(body), len(fields))]
    raise ValueError(f"unknown firmware format {fmt!r}: use one of {', '.join(FIRMWARES)}")
