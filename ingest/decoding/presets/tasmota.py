"""Tasmota (https://tasmota.github.io/docs/MQTT/): ``tele/<topic>/SENSOR`` and ``tele/<topic>/STATE``
(telemetry and metrics, nested sensor objects flattened with ``.``: ``ENERGY.Power``,
``AM2301.Temperature``; ``POWER``/``POWER1``… ``ON``/``OFF`` in STATE as bools) and
``tele/<topic>/LWT`` ``Online``/``Offline`` (status). ``Time`` is local time without an offset:
read in the option ``timezone`` (an IANA name, default UTC). Units by sensor key are declared
(``field_units``, no tag); ``TempUnit: "F"`` and a ``PressureUnit`` other than ``hPa`` in the
payload are honoured as the ``unit`` tag of those readings' own point (a ``PressureUnit`` that is
not a string is WRONG_TYPE; one that cannot be a tag value, INVALID_NAME). Options: ``timezone``,
``prefix`` (``tele``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.model import FieldValue, Kind, Reason, Rejected
from ingest.decoding.mapped import JsonReadings, StatusWords, TimeSpec, zone
from ingest.decoding.mapping_rule import MappingRule
from ingest.decoding.presets.base import Preset, PresetError, text_option
from ingest.decoding.units import Unit, declared_table, sent

UNITS_TEXT = {
    "Temperature": "Cel",
    "DewPoint": "Cel",
    "Humidity": "%RH",
    "Pressure": "hPa",
    "SeaPressure": "hPa",
    "Power": "W",
    "ApparentPower": "VA",
    "ReactivePower": "var",
    "Voltage": "V",
    "Current": "A",
    "Total": "kWh",
    "Today": "kWh",
    "Yesterday": "kWh",
    "Frequency": "Hz",
    "Illuminance": "lx",
    "CarbonDioxide": "ppm",
    "eCO2": "ppm",
    "TVOC": "ppb",
    "Distance": "cm",
    "UptimeSec": "s",
    "Heap": "kB",
}
"""Units of Tasmota's sensor keys (the leaf key, whatever sensor it is under)."""
UNITS = declared_table(UNITS_TEXT)
WIFI = declared_table({"Wifi.Signal": "dBm", "Wifi.RSSI": "%"})  # Tasmota's RSSI is a 0-100 quality
FAHRENHEIT = sent("Far")

UNIT_CONTEXT = ("TempUnit", "PressureUnit")  # what unit_of reads of the message besides the field


def unit_of(name: str, leaf: str, obj: dict[str, Any]) -> Unit | None:
    wifi = WIFI.get(name)
    if wifi is not None:
        return wifi
    if leaf in ("Temperature", "DewPoint") and obj.get("TempUnit") == "F":
        return FAHRENHEIT
    if leaf in ("Pressure", "SeaPressure") and "PressureUnit" in obj:
        unit = obj["PressureUnit"]
        if type(unit) is not str:
            raise Rejected(Reason.WRONG_TYPE, "PressureUnit must be a string")
        if unit != UNITS_TEXT[leaf]:
            return sent(unit)  # checked as a tag value with the other units
    return UNITS.get(leaf)


class TasmotaState(JsonReadings):
    """STATE: the numeric leaves plus each relay's ``POWER``/``POWERn`` as a bool."""

    def readings(self, obj: dict[str, Any]) -> list[tuple[str, FieldValue, Unit | None]]:
        out = super().readings(obj)
        for k, v in obj.items():
            if (k == "POWER" or (k.startswith("POWER") and k[5:].isdigit())) and v in ("ON", "OFF"):
                out.append((k, v == "ON", None))
        return out


def build(options: Mapping[str, Any]) -> list[MappingRule]:
    tz = options.get("timezone", "UTC")
    try:
        zone(tz)
    except Exception:  # ZoneInfoNotFoundError, ValueError, TypeError: all the same to a user
        raise PresetError(f"timezone {str(tz)[:40]!r} is not an IANA time zone (e.g. Europe/Berlin)") from None
    prefix = text_option(options, "prefix", "tele")
    time = TimeSpec(("Time",), "local", tz)
    sensor = JsonReadings(time=time, unit_of=unit_of, unit_context=UNIT_CONTEXT)
    state = TasmotaState(time=time, unit_of=unit_of, unit_context=UNIT_CONTEXT)
    status = StatusWords()
    return [
        MappingRule("tasmota SENSOR", f"{prefix}/{{device}}/SENSOR", Kind.TELEMETRY, lambda k, n: sensor),
        MappingRule("tasmota STATE", f"{prefix}/{{device}}/STATE", Kind.METRICS, lambda k, n: state),
        MappingRule("tasmota LWT", f"{prefix}/{{device}}/LWT", Kind.STATUS, lambda k, n: status),
    ]


PRESET = Preset(
    "tasmota",
    {"timezone": "IANA zone of the devices' local Time (default UTC)", "prefix": "telemetry prefix (default tele)"},
    build,
)
