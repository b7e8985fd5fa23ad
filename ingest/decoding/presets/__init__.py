"""Firmware presets: one module per preset, registered here (a new preset is one module and one
entry in :data:`PRESETS`). A preset expands to one or more :class:`MappingRule`s."""

from __future__ import annotations

from ingest.decoding.presets import esphome, shelly_gen2, tasmota, ttn_v3, zigbee2mqtt
from ingest.decoding.presets.base import Preset, PresetError

PRESETS: dict[str, Preset] = {
    p.name: p for p in (tasmota.PRESET, zigbee2mqtt.PRESET, shelly_gen2.PRESET, esphome.PRESET, ttn_v3.PRESET)
}

__all__ = ["PRESETS", "Preset", "PresetError"]
