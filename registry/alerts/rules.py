"""Alert rule definitions: the plain value the engine evaluates, and its validation. No I/O."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass

from core.model import MEASUREMENTS, Kind

KINDS = ("threshold", "rate", "nodata", "event")
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
    kind: str
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

    def describe(self) -> str:
        if self.kind == "threshold":
            held = f" for {self.hold_s:g}s" if self.hold_s else ""
            return f"{self.field} {self.op} {self.threshold:g}{held}"
        if self.kind == "rate":
            what = f"|d{self.field}/dt|" if self.absolute else f"d{self.field}/dt"
            return f"{what} {self.op} {self.threshold:g}/s"
        if self.kind == "nodata":
            return f"no data for {self.hold_s:g}s"
        return f"event level >= {self.level}"


def validate(rule: Rule) -> Rule:
    """Return ``rule`` if it is complete and consistent, else raise :class:`RuleError`."""
    if not rule.name.strip():
        raise RuleError("the rule name must not be empty")
    if rule.kind not in KINDS:
        raise RuleError(f"unknown rule kind {rule.kind!r} (use {', '.join(KINDS)})")
    if rule.severity not in SEVERITIES:
        raise RuleError(f"unknown severity {rule.severity!r} (use {', '.join(SEVERITIES)})")
    if rule.scope not in SCOPES:
        raise RuleError(f"unknown scope {rule.scope!r} (use {', '.join(SCOPES)})")
    if rule.scope != "all" and not rule.scope_value:
        raise RuleError(f"scope {rule.scope} needs --scope-value (which {rule.scope})")
    if rule.scope == "all" and rule.scope_value:
        raise RuleError("scope all takes no --scope-value")
    for name, v in (("--for", rule.hold_s), ("--hysteresis", rule.hysteresis), ("--clear-after", rule.clear_after_s)):
        if v < 0:
            raise RuleError(f"{name} must not be negative")
    if rule.kind in ("threshold", "rate"):
        if not rule.field:
            raise RuleError(f"a {rule.kind} rule needs --field")
        if rule.op not in OPS:
            raise RuleError(f"unknown comparison {rule.op!r} (use {' '.join(OPS)})")
        if rule.threshold is None:
            raise RuleError(f"a {rule.kind} rule needs --value")
    if rule.measurement is not None and rule.measurement not in MEASUREMENTS.values():
        raise RuleError(f"unknown measurement {rule.measurement!r} (use {', '.join(MEASUREMENTS.values())})")
    if rule.kind in ("nodata", "event") and (rule.field or rule.op or rule.threshold is not None):
        raise RuleError(f"a {rule.kind} rule takes no --field, --op or --value")
    if rule.kind == "nodata" and rule.hold_s <= 0:
        raise RuleError("a nodata rule needs --for (e.g. 300s)")
    if rule.kind == "event" and (rule.level or "error") not in LEVELS:
        raise RuleError(f"unknown event level {rule.level!r} (use {', '.join(LEVELS)})")
    return rule


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
