"""Alert vocabulary: rule kinds, alert statuses, the rule value the engine evaluates, comparisons. No I/O.

How each kind reads, validates and fires is in ``registry.alerts.kinds``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from core.model import MEASUREMENTS, Kind


class RuleKind(StrEnum):
    """What makes a rule fire; each has one spec in ``registry.alerts.kinds.SPECS``."""

    THRESHOLD = "threshold"
    RATE = "rate"
    NODATA = "nodata"
    EVENT = "event"


class AlertStatus(StrEnum):
    """An alert's place in its lifecycle: opened by the engine, acknowledged and resolved by people
    (or resolved by the engine when the condition clears)."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class InvalidTransition(Exception):
    """The alert is not in a state that allows the requested change."""


OPEN, UPDATE, RESOLVE = "open", "update", "resolve"  # what a transition does to an alert
KINDS = tuple(k.value for k in RuleKind)
STATUSES = tuple(s.value for s in AlertStatus)
SEVERITIES = ("critical", "major", "minor", "warning", "info")
SCOPES = ("device", "type", "site", "all")
LEVELS = ("debug", "info", "warning", "error", "critical")
LEVEL_RANK = {name: i for i, name in enumerate(LEVELS)}
OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
EVENTS_MEASUREMENT = MEASUREMENTS[Kind.EVENTS]
DEFAULT_CLEAR_AFTER_S = 60.0


class RuleError(ValueError):
    """A rule definition that cannot be evaluated; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One enabled alert rule.

    threshold: ``field op threshold`` held for ``hold_s`` (point time); clears once the value is
    back past ``threshold`` by ``hysteresis``. rate: per-second change of ``field`` between
    successive points (``abs`` unless ``absolute`` is false) ``op threshold``. nodata: no point
    from a device for ``hold_s``. event: an ``event_logs`` point with level >= ``level``.
    rate and event alerts clear after ``clear_after_s`` without a breach.
    """

    id: int
    name: str
    kind: RuleKind
    severity: str
    scope: str = "all"
    scope_value: str | None = None
    measurement: str | None = None
    field: str | None = None
    op: str | None = None
    threshold: float | None = None
    hold_s: float = 0.0
    hysteresis: float = 0.0
    clear_after_s: float = 0.0
    level: str | None = None
    absolute: bool = True

    @property
    def quiet_s(self) -> float:
        """How long a rate/event alert must see no breach before it resolves itself."""
        if self.clear_after_s > 0:
            return self.clear_after_s
        return max(self.hold_s, DEFAULT_CLEAR_AFTER_S)


def breaches(op: str, value: float, threshold: float) -> bool:
    return OPS[op](value, threshold)


def cleared(op: str, value: float, threshold: float, hysteresis: float) -> bool:
    """True once ``value`` is back on the safe side of ``threshold`` by ``hysteresis``."""
    if hysteresis <= 0:
        return not OPS[op](value, threshold)
    if op in (">", ">="):
        return value < threshold - hysteresis
    if op in ("<", "<="):
        return value > threshold + hysteresis
    if op == "==":
        return abs(value - threshold) > hysteresis
    return abs(value - threshold) <= hysteresis  # "!="
