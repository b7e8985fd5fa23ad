"""Zigbee2MQTT (https://www.zigbee2mqtt.io/guide/usage/mqtt_topics_and_messages.html):
``zigbee2mqtt/<friendly_name>`` device state as telemetry (numbers and bools; nested objects
flattened with ``.``; ``update`` and ``last_seen`` are not fields, ``last_seen`` is the time when the
bridge sends it) and ``zigbee2mqtt/<friendly_name>/availability`` (``online``/``offline``, plain or
``{"state": "online"}``) as status. Friendly names become device ids (other characters -> ``_``);
names holding ``/`` are not matched. The bridge is the gateway (its base topic). Units come from
:data:`UNITS`, a static table of Zigbee2MQTT's common exposes. The bridge's retained
``bridge/devices`` list is not read: the daemon subscribes without retained messages (MQTT 5 retain
handling 2), and under ``--workers`` only one worker would see a republished list, so a reading's
unit would depend on which worker took it and on when the daemon last started; the static table's
units are the same in every worker (declared: ``field_units``, no tag).
Options: ``base_topic`` (``zigbee2mqtt``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.model import Kind
from ingest.decoding.mapped import JsonReadings, StatusWords, TimeSpec
from ingest.decoding.mapping_rule import MappingRule
from ingest.decoding.presets.base import Preset, text_option
from ingest.decoding.units import Unit, declared_table

UNITS_TEXT = {
    "temperature": "Cel",
    "local_temperature": "Cel",
    "device_temperature": "Cel",
    "current_heating_setpoint": "Cel",
    "humidity": "%RH",
    "soil_moisture": "%",
    "pressure": "hPa",
    "battery": "%",
    "voltage": "mV",
    "illuminance_lux": "lx",
    "power": "W",
    "current": "A",
    "energy": "kWh",
    "co2": "ppm",
    "voc": "ppb",
    "pm25": "ug/m3",
    "formaldehyd": "mg/m3",
    "linkquality": "lqi",
}
"""Units of Zigbee2MQTT's common exposes (https://www.zigbee2mqtt.io/guide/usage/exposes.html)."""
UNITS = declared_table(UNITS_TEXT)  # declared: stored in field_units, not as tags


def unit_of(name: str, leaf: str, obj: dict[str, Any]) -> Unit | None:
    return UNITS.get(name)


def build(options: Mapping[str, Any]) -> list[MappingRule]:
    base = text_option(options, "base_topic", "zigbee2mqtt")
    readings = JsonReadings(
        time=TimeSpec(("last_seen",), "auto"), unit_of=unit_of, skip=frozenset({"update"}), bools=True
    )
    status = StatusWords()
    skip = frozenset({"bridge"})
    return [
        MappingRule(
            "zigbee2mqtt device",
            f"{base}/{{device}}",
            Kind.TELEMETRY,
            lambda k, n: readings,
            gateway=base,
            skip_devices=skip,
        ),
        MappingRule(
            "zigbee2mqtt availability",
            f"{base}/{{device}}/availability",
            Kind.STATUS,
            lambda k, n: status,
            gateway=base,
            skip_devices=skip,
        ),
    ]


PRESET = Preset("zigbee2mqtt", {"base_topic": "Zigbee2MQTT's base topic (default zigbee2mqtt)"}, build)
