"""Declared units as metadata: the ``field_units`` measurement. Pure state, no I/O.

A unit a mapping declares (``ingest.decoding.units``) is not a tag on the reading's point; it is
recorded, per (device, measurement, field), as one point of the measurement :data:`MEASUREMENT`:

    field_units,device_id=D,field=F,measurement=M unit="W" <the reading's UTC day>

written through the same batch, spool and idempotent write as the readings (the decoder appends it
to the message's points). :class:`FieldUnitsLog` remembers, per process, what it already emitted,
so steady traffic adds nothing: a few points per device per day and run. The content comes from
configuration and the time is the day of the data, so every worker and every restart writes the
identical point (an idempotent overwrite, exact under ``--workers``), and under a retention policy
the record expires with the data it describes. The newest ``unit`` of a (device, measurement,
field) is the unit of its untagged points; a point with a ``unit`` tag carries its own.
"""

from __future__ import annotations

from core.model import DeclaredUnits, Point

MEASUREMENT = "field_units"
DAY_NS = 86_400 * 10**9
MAX_REMEMBERED = 65536  # entries kept per kind (then the log starts over: a few points are written again)

_Gate = tuple[str, str, DeclaredUnits]  # device, measurement, the units a point declares


class FieldUnitsLog:
    """Appends a ``field_units`` point for each (device, measurement, field, unit) not yet emitted
    for that day of data. Not thread-safe (the daemon decodes under one lock)."""

    def __init__(self) -> None:
        self._gates: dict[_Gate, int] = {}  # -> the day its units were last looked at
        self._seen: set[tuple[str, str, str, str, int]] = set()  # device, measurement, field, unit, day
        # device -> the gate its last point passed and its day (_gates holds it): that gate again,
        # that day, is known without building and hashing the gate
        self._recent: dict[str, tuple[DeclaredUnits, str, int]] = {}

    def add(self, points: list[Point]) -> list[Point]:
        """``points`` (one message's) with the ``field_units`` points their declared units call for."""
        extra: list[Point] | None = None
        for p in points:
            declared = p.declared
            if declared is None:
                continue
            day = p.ts_ns - p.ts_ns % DAY_NS
            recent = self._recent.get(p.device_id)
            if recent is not None and recent[0] is declared and recent[2] == day and recent[1] == p.measurement:
                continue  # the steady state: the same units, the same day
            gate = (p.device_id, p.measurement, declared)
            known = self._gates.get(gate) == day
            if not known:
                if len(self._gates) >= MAX_REMEMBERED:
                    self._gates.clear()
                    self._recent.clear()
                self._gates[gate] = day
            self._recent[p.device_id] = (declared, p.measurement, day)
            if known:
                continue
            for name, unit in declared.units.items():
                key = (p.device_id, p.measurement, name, unit, day)
                if key in self._seen:
                    continue
                if len(self._seen) >= MAX_REMEMBERED:
                    self._seen.clear()
                self._seen.add(key)
                if extra is None:
                    extra = []
                extra.append(
                    Point(MEASUREMENT, p.device_id, {"unit": unit}, day, {"measurement": p.measurement, "field": name})
                )
        return points if extra is None else points + extra
