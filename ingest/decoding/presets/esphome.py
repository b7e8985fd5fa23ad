"""ESPHome (https://esphome.io/components/mqtt.html): ``<topic_prefix>/sensor/<object_id>/state`` and
``<topic_prefix>/binary_sensor/<object_id>/state`` bare values as telemetry, the field named by
the object id (``nan`` from a sensor without a reading is NON_FINITE, dead-lettered);
``<topic_prefix>/status`` ``online``/``offline`` as status. The topic prefix (by default the node
name) is the device. ESPHome's state topics carry no unit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.model import Kind
from ingest.decoding.mapped import BareValue, StatusWords
from ingest.decoding.mapping_rule import MappingRule
from ingest.decoding.presets.base import Preset


def build(options: Mapping[str, Any]) -> list[MappingRule]:
    status = StatusWords()
    return [
        MappingRule(
            "esphome sensor", "{device}/sensor/{field}/state", Kind.TELEMETRY, lambda k, n: BareValue(n["field"])
        ),
        MappingRule(
            "esphome binary_sensor",
            "{device}/binary_sensor/{field}/state",
            Kind.TELEMETRY,
            lambda k, n: BareValue(n["field"]),
        ),
        MappingRule("esphome status", "{device}/status", Kind.STATUS, lambda k, n: status),
    ]


PRESET = Preset("esphome", {}, build)
