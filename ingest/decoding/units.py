"""A mapped reading's unit and where it comes from. Pure.

A unit the mapping *declares* (a user mapping's ``units`` table, a ``unit`` of a bare value, a
preset's unit-by-key table) is configuration: every worker and every restart gives a field the same
one. It is stored once per (device, measurement, field) in the ``field_units`` measurement
(``ingest.decoding.field_units``), not as a tag: the declared-unit readings of one message are one
point. A unit the *payload* sends (Tasmota's ``TempUnit: "F"``, ``PressureUnit``) that differs from
the declared one stays the point's ``unit`` tag, on its own point, so a series never mixes units: a
point without a ``unit`` tag is in its fields' declared units.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Unit:
    text: str
    declared: bool = True  # False: sent in the payload, stored as the point's ``unit`` tag


def declared_table(units: Mapping[str, str]) -> dict[str, Unit]:
    """A unit-by-key table as declared units (one ``Unit`` object per key, built once)."""
    return {key: Unit(text) for key, text in units.items()}


def sent(text: str) -> Unit:
    """A unit a payload gave (it becomes a tag; its value is checked like any tag value)."""
    return Unit(text, declared=False)
