"""Per-device budget for new field keys and unit tag values. Pure state, no I/O.

Every field key widens its measurement's schema for every reader, and every unit is a tag value
(InfluxDB caps values per tag, 100,000 by default, then refuses *everyone's* writes) or, declared
by a mapping, a ``field_units`` record (``Point.declared``): both count as units. So a
device may introduce at most ``max_new_fields`` field keys and ``max_new_units`` units per
``window_s``; a message that would exceed its budget is refused whole (CARDINALITY_LIMIT) and
teaches the guard nothing. Keys and units a device has used before are free. Memory is bounded:
at most ``max_devices`` devices (the first seen forgotten first), each remembering at most
``max_known`` keys per measurement and units (oldest forgotten first; a forgotten key counts as
new again).

Lifecycle: build once, call :meth:`admit` for every decoded message; not thread-safe (the
daemon decodes under one lock). After a restart every key counts as new once, which the
defaults leave room for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from core.model import Point, Reason, Rejected

K = TypeVar("K")


@dataclass(slots=True)
class _Device:
    window_start: int
    new_fields: int = 0
    new_units: int = 0
    fields: dict[str, dict[str, None]] = field(default_factory=dict)  # measurement -> ordered key set
    units: dict[str, None] = field(default_factory=dict)


class CardinalityGuard:
    def __init__(
        self,
        *,
        max_new_fields: int = 100,
        max_new_units: int = 16,
        window_s: float = 3600.0,
        max_devices: int = 100_000,
        max_known: int = 1024,
    ) -> None:
        self.max_new_fields = max_new_fields
        self.max_new_units = max_new_units
        self.window_ns = int(window_s * 1e9)
        self.max_devices = max_devices
        self.max_known = max_known
        self._devices: dict[str, _Device] = {}

    def admit(self, device_id: str, points: Sequence[Point], now_ns: int) -> None:
        """Count ``points`` (one message) against the device's budget. Raises Rejected."""
        d = self._devices.get(device_id)
        if d is not None and len(points) == 1 and 0 <= now_ns - d.window_start < self.window_ns:
            p = points[0]  # the steady state: one point, every name known, the window still open
            known = d.fields.get(p.measurement)
            if known is not None and known.keys() >= p.fields.keys():
                unit = p.tags.get("unit") if p.tags else None
                if (unit is None or unit in d.units) and (p.declared is None or d.units.keys() >= p.declared.unit_set):
                    return
        if d is None:
            if len(self._devices) >= self.max_devices:
                del self._devices[next(iter(self._devices))]
            d = self._devices[device_id] = _Device(now_ns)
        if now_ns - d.window_start >= self.window_ns or now_ns < d.window_start:
            d.window_start, d.new_fields, d.new_units = now_ns, 0, 0
        known_fields, known_units = d.fields, d.units
        new_fields: dict[tuple[str, str], None] = {}
        new_units: dict[str, None] = {}
        for p in points:
            known = known_fields.get(p.measurement)
            if known is None or not known.keys() >= p.fields.keys():  # the steady state skips this loop
                for k in p.fields:
                    if known is None or k not in known:
                        new_fields[(p.measurement, k)] = None
            unit = p.tags.get("unit")
            if unit is not None and unit not in known_units:
                new_units[unit] = None
            if p.declared is not None:  # a declared unit (no tag: field_units) is a unit all the same
                for unit in p.declared.unit_set:
                    if unit not in known_units:
                        new_units[unit] = None
        if not new_fields and not new_units:
            return
        per = f"per {self.window_ns / 1e9:g} s"
        if d.new_fields + len(new_fields) > self.max_new_fields:
            raise Rejected(
                Reason.CARDINALITY_LIMIT,
                f"{len(new_fields)} new field names; this device may add {self.max_new_fields} "
                f"{per} and has added {d.new_fields}",
            )
        if d.new_units + len(new_units) > self.max_new_units:
            raise Rejected(
                Reason.CARDINALITY_LIMIT,
                f"{len(new_units)} new units; this device may add {self.max_new_units} "
                f"{per} and has added {d.new_units}",
            )
        d.new_fields += len(new_fields)
        d.new_units += len(new_units)
        for m, k in new_fields:
            _learn(known_fields.setdefault(m, {}), {k: None}, self.max_known)
        _learn(known_units, new_units, self.max_known)


def _learn(known: dict[K, None], new: dict[K, None], cap: int) -> None:
    known.update(new)
    excess = len(known) - cap
    if excess > 0:
        for k in list(known)[:excess]:
            del known[k]
