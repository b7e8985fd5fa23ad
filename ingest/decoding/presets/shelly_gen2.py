"""Shelly Gen2+ (https://shelly-api-docs.shelly.cloud/gen2/General/Notifications,
https://shelly-api-docs.shelly.cloud/gen2/ComponentsAndServices/Mqtt): ``<topic_prefix>/events/rpc``
JSON-RPC notifications. ``NotifyStatus`` and ``NotifyFullStatus`` are telemetry at ``params.ts``:
every number and bool of each component, flattened as ``<component>.<key>`` (``switch:0.apower``,
``switch:0.aenergy.total``, ``switch:0.temperature.tC``); arrays are skipped. Any other method
(``NotifyEvent``) carries no reading and is dead-lettered as NO_FIELDS. The prefix (by default the
device id, ``shellyplus1pm-<mac>``) is the device.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.model import Kind, Point, Reason, Rejected
from ingest.decoding.codecs import Source, json_loads, parse_json
from ingest.decoding.mapped import TimeSpec, numeric_leaves, points_of
from ingest.decoding.mapping_rule import MappingRule
from ingest.decoding.presets.base import Preset
from ingest.decoding.units import declared_table

UNITS = declared_table(
    {
        "apower": "W",
        "voltage": "V",
        "current": "A",
        "freq": "Hz",
        "total": "Wh",
        "tC": "Cel",
        "tF": "Far",
        "rssi": "dBm",
        "uptime": "s",
        "rh": "%RH",
    }
)  # declared: stored in field_units, not as tags
METHODS = frozenset({"NotifyStatus", "NotifyFullStatus"})


class ShellyRpc:
    name = "shelly-gen2-rpc"

    def __init__(self) -> None:
        self._loads = json_loads()
        self._time = TimeSpec(("ts",), "epoch_s")

    def decode(self, source: Source, payload: bytes, now_ns: int, latest_ns: int) -> list[Point]:
        obj = parse_json(payload, self._loads, source.fast_json)
        if type(obj) is not dict:
            raise Rejected(Reason.WRONG_TYPE, "a Shelly RPC notification is a JSON object")
        method = obj.get("method")
        if method not in METHODS:
            raise Rejected(Reason.NO_FIELDS, f"method {str(method)[:40]!r} carries no readings")
        params = obj.get("params")
        if type(params) is not dict:
            raise Rejected(Reason.NO_FIELDS, f"{method} without params")
        ts = self._time.ns(params, now_ns, latest_ns)
        leaves = numeric_leaves(params, ".", frozenset({"ts"}), bools=True)
        if not leaves:
            raise Rejected(Reason.NO_FIELDS, f"{method} holds no number")
        return points_of(source, [(name, v, UNITS.get(leaf)) for name, leaf, v in leaves], ts)


def build(options: Mapping[str, Any]) -> list[MappingRule]:
    codec = ShellyRpc()
    return [MappingRule("shelly_gen2 events/rpc", "{device}/events/rpc", Kind.TELEMETRY, lambda k, n: codec)]


PRESET = Preset("shelly_gen2", {}, build)
