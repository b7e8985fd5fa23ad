"""The Things Stack v3 (https://www.thethingsindustries.com/docs/integrations/mqtt/,
https://www.thethingsindustries.com/docs/the-things-stack/concepts/data-formats/): uplinks on
``v3/<app>@<tenant>/devices/<device_id>/up``. ``uplink_message.decoded_payload`` (numbers and bools,
nested objects flattened with ``.``) is telemetry at ``received_at``; ``rssi`` and ``snr`` of the
gateway that heard the uplink best (highest RSSI in ``rx_metadata``) are metrics (``device_metrics``).
The application (``<app>@<tenant>``, ``@`` -> ``_``) is the gateway. The Things Stack's MQTT
server publishes at QoS 0: see the README on what that means.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.model import MEASUREMENTS, FieldValue, Kind, Point, Reason, Rejected
from ingest.decoding.codecs import Source, json_loads, parse_json
from ingest.decoding.mapped import TimeSpec, field_value, numeric_leaves, points_of
from ingest.decoding.mapping_rule import MappingRule
from ingest.decoding.presets.base import Preset
from ingest.decoding.units import Unit

DBM, DB = Unit("dBm"), Unit("dB")  # declared (the preset's): stored in field_units, not as tags


def _best(rx: object) -> dict[str, Any] | None:
    best: dict[str, Any] | None = None
    if type(rx) is not list:
        return None
    for g in rx:
        if type(g) is dict and type(g.get("rssi")) in (int, float) and (best is None or g["rssi"] > best["rssi"]):
            best = g
    return best


class TtnUplink:
    name = "ttn-v3-uplink"

    def __init__(self) -> None:
        self._loads = json_loads()
        self._time = TimeSpec(("received_at",), "rfc3339")

    def decode(self, source: Source, payload: bytes, now_ns: int, latest_ns: int) -> list[Point]:
        obj = parse_json(payload, self._loads, source.fast_json)
        if type(obj) is not dict:
            raise Rejected(Reason.WRONG_TYPE, "an uplink is a JSON object")
        up = obj.get("uplink_message")
        if type(up) is not dict:
            raise Rejected(Reason.NO_FIELDS, "no uplink_message")
        ts = self._time.ns(obj, now_ns, latest_ns)
        points: list[Point] = []
        decoded = up.get("decoded_payload")
        if type(decoded) is dict:
            leaves = numeric_leaves(decoded, ".", bools=True)
            if leaves:
                points += points_of(source, [(name, v, None) for name, _, v in leaves], ts)
        best = _best(up.get("rx_metadata"))
        if best is not None:
            radio: list[tuple[str, FieldValue, Unit | None]] = [("rssi", field_value("rssi", best["rssi"]), DBM)]
            if type(best.get("snr")) in (int, float):
                radio.append(("snr", field_value("snr", best["snr"]), DB))
            points += points_of(source, radio, ts, MEASUREMENTS[Kind.METRICS])
        if not points:
            raise Rejected(Reason.NO_FIELDS, "no decoded_payload number and no gateway metadata")
        return points


def build(options: Mapping[str, Any]) -> list[MappingRule]:
    codec = TtnUplink()
    return [
        MappingRule(
            "ttn_v3 uplink", "v3/{app}/devices/{device}/up", Kind.TELEMETRY, lambda k, n: codec, gateway="{app}"
        )
    ]


PRESET = Preset("ttn_v3", {}, build)
