"""One spec per alert rule kind: how its rules read (describe), what they must define (validate)
and how they fire (evaluate). Pure: no I/O, no clock.

A spec reads and updates the state the engine keeps per (rule, device) and returns an
:class:`Decision` (open, update, resolve) or None. The engine feeds each kind the inputs it
declares: field values of stored points (``reads_fields``), event points (``reads_events``),
a device's silence (``watches_silence``), and clock ticks (every kind). A new kind is one
spec class here, one entry in :data:`SPECS` and one :class:`RuleKind` member.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.model import MEASUREMENTS
from registry.alerts.rules import (
    LEVEL_RANK,
    LEVELS,
    OPEN,
    OPS,
    RESOLVE,
    SCOPES,
    SEVERITIES,
    UPDATE,
    Rule,
    RuleError,
    RuleKind,
    breaches,
    cleared,
)


@dataclass(slots=True)
class State:
    """What the engine remembers of one (rule, device)."""

    firing: bool = False
    pending_since: float | None = None  # start of the current breaching run (point time)
    pending_arrival: float = 0.0  # when that run's first point arrived (wall time)
    last_ts: float | None = None  # newest point evaluated (point time)
    last_value: float | None = None
    last_breach: float | None = None  # rate/event: arrival time of the newest breach
    last_breaching: bool = False


@dataclass(slots=True)
class Decision:
    """What a spec decided: ``action`` at ``at``; ``message`` is an open alert's detail (default:
    the rule described, with the value) or the reason it resolved."""

    action: str
    at: float
    value: float | None = None
    message: str | None = None


class KindSpec:
    """The hooks the engine calls; a kind overrides those its inputs need (the rest do nothing)."""

    kind: RuleKind
    reads_fields = False
    reads_events = False
    watches_silence = False

    def describe(self, rule: Rule) -> str:
        raise NotImplementedError

    def validate(self, rule: Rule) -> None:
        """Kind-specific checks; raise :class:`RuleError` with what to fix."""

    def on_value(self, rule: Rule, st: State, ts: float, value: float, now: float) -> Decision | None:
        """A value of the rule's field, from a point timed ``ts`` that arrived at ``now``."""
        return None

    def fires_on(self, rule: Rule, level_rank: int) -> bool:
        """Does an event of this level breach the rule?"""
        return False

    def on_event(self, rule: Rule, st: State, ts: float, now: float, detail: str) -> Decision | None:
        """A breaching event (``fires_on`` said yes)."""
        return None

    def on_seen(self, rule: Rule, st: State, now: float) -> Decision | None:
        """A point from the device arrived."""
        return None

    def too_quiet(self, rule: Rule, silent_s: float) -> bool:
        """Has the device been silent for long enough to breach?"""
        return False

    def on_silence(self, rule: Rule, st: State, now: float, silent_s: float) -> Decision | None:
        """The device has been silent too long (``too_quiet`` said yes)."""
        return None

    def on_tick(self, rule: Rule, st: State, now: float) -> Decision | None:
        """The clock moved on."""
        return None


def _needs_comparison(rule: Rule) -> None:
    if not rule.field:
        raise RuleError(f"a {rule.kind} rule needs --field")
    if rule.op not in OPS:
        raise RuleError(f"unknown comparison {rule.op!r} (use {' '.join(OPS)})")
    if rule.threshold is None:
        raise RuleError(f"a {rule.kind} rule needs --value")


def _takes_no_comparison(rule: Rule) -> None:
    if rule.field or rule.op or rule.threshold is not None:
        raise RuleError(f"a {rule.kind} rule takes no --field, --op or --value")


def _quiet(rule: Rule, st: State, now: float) -> Decision | None:
    """Rate and event alerts resolve after ``quiet_s`` without a breach."""
    if st.firing and st.last_breach is not None and now - st.last_breach >= rule.quiet_s:
        st.firing = False
        st.pending_since = None
        return Decision(RESOLVE, now, st.last_value, f"quiet for {rule.quiet_s:g}s")
    return None


class Threshold(KindSpec):
    """``field op threshold`` held for ``hold_s`` (point time); clears once the value is back past
    ``threshold`` by ``hysteresis``."""

    kind = RuleKind.THRESHOLD
    reads_fields = True

    def describe(self, rule: Rule) -> str:
        held = f" for {rule.hold_s:g}s" if rule.hold_s else ""
        return f"{rule.field} {rule.op} {rule.threshold:g}{held}"

    def validate(self, rule: Rule) -> None:
        _needs_comparison(rule)

    def on_value(self, rule: Rule, st: State, ts: float, value: float, now: float) -> Decision | None:
        if st.last_ts is not None and ts < st.last_ts:
            return None  # out of order: the newer point already decided
        assert rule.op is not None and rule.threshold is not None
        st.last_ts, st.last_value = ts, value
        hit = breaches(rule.op, value, rule.threshold)
        st.last_breaching = hit
        if st.firing:
            if hit:
                return Decision(UPDATE, ts, value)
            if cleared(rule.op, value, rule.threshold, rule.hysteresis):
                st.firing = False
                st.pending_since = None
                return Decision(RESOLVE, ts, value, "back to normal")
            return None
        if not hit:
            st.pending_since = None
            return None
        if st.pending_since is None:
            st.pending_since, st.pending_arrival = ts, now
        if ts - st.pending_since >= rule.hold_s:
            st.firing = True
            return Decision(OPEN, ts, value)
        return None

    def on_tick(self, rule: Rule, st: State, now: float) -> Decision | None:
        """A device that went silent while breaching: its last value is taken to persist, and the
        hold counts from the arrival of the run's first point."""
        if st.firing or st.pending_since is None or not st.last_breaching:
            return None
        if now - st.pending_arrival >= rule.hold_s:
            st.firing = True
            return Decision(OPEN, now, st.last_value)
        return None


class Rate(KindSpec):
    """Per-second change of ``field`` between successive points (``abs`` unless ``absolute`` is
    false) ``op threshold``; clears after ``quiet_s`` without a breach."""

    kind = RuleKind.RATE
    reads_fields = True

    def describe(self, rule: Rule) -> str:
        what = f"|d{rule.field}/dt|" if rule.absolute else f"d{rule.field}/dt"
        return f"{what} {rule.op} {rule.threshold:g}/s"

    def validate(self, rule: Rule) -> None:
        _needs_comparison(rule)

    def on_value(self, rule: Rule, st: State, ts: float, value: float, now: float) -> Decision | None:
        prev_ts, prev_value = st.last_ts, st.last_value
        if prev_ts is not None and ts <= prev_ts:
            return None
        st.last_ts, st.last_value = ts, value
        if prev_ts is None or prev_value is None:
            return None
        rate = (value - prev_value) / (ts - prev_ts)
        assert rule.op is not None and rule.threshold is not None
        if not breaches(rule.op, abs(rate) if rule.absolute else rate, rule.threshold):
            st.pending_since = None
            return None
        st.last_breach = now
        if st.firing:
            return Decision(UPDATE, ts, rate)
        if st.pending_since is None:
            st.pending_since = prev_ts
        if ts - st.pending_since >= rule.hold_s:
            st.firing = True
            return Decision(OPEN, ts, rate)
        return None

    def on_tick(self, rule: Rule, st: State, now: float) -> Decision | None:
        return _quiet(rule, st, now)


class NoData(KindSpec):
    """No point from a device for ``hold_s``; resolves when data comes again."""

    kind = RuleKind.NODATA
    watches_silence = True

    def describe(self, rule: Rule) -> str:
        return f"no data for {rule.hold_s:g}s"

    def validate(self, rule: Rule) -> None:
        _takes_no_comparison(rule)
        if rule.hold_s <= 0:
            raise RuleError("a nodata rule needs --for (e.g. 300s)")

    def on_seen(self, rule: Rule, st: State, now: float) -> Decision | None:
        if st.firing:
            st.firing = False
            return Decision(RESOLVE, now, None, "data again")
        return None

    def too_quiet(self, rule: Rule, silent_s: float) -> bool:
        return silent_s >= rule.hold_s

    def on_silence(self, rule: Rule, st: State, now: float, silent_s: float) -> Decision | None:
        if st.firing:
            return None
        st.firing = True
        return Decision(OPEN, now, None, f"no data for {silent_s:.0f}s")


class Event(KindSpec):
    """An ``event_logs`` point with level >= ``level``; clears after ``quiet_s`` without one."""

    kind = RuleKind.EVENT
    reads_events = True

    def describe(self, rule: Rule) -> str:
        return f"event level >= {rule.level}"

    def validate(self, rule: Rule) -> None:
        _takes_no_comparison(rule)
        if (rule.level or "error") not in LEVELS:
            raise RuleError(f"unknown event level {rule.level!r} (use {', '.join(LEVELS)})")

    def fires_on(self, rule: Rule, level_rank: int) -> bool:
        return level_rank >= LEVEL_RANK[rule.level or "error"]

    def on_event(self, rule: Rule, st: State, ts: float, now: float, detail: str) -> Decision | None:
        st.last_breach = now
        if st.firing:
            return Decision(UPDATE, ts)
        st.firing = True
        return Decision(OPEN, ts, None, detail)

    def on_tick(self, rule: Rule, st: State, now: float) -> Decision | None:
        return _quiet(rule, st, now)


SPECS: dict[RuleKind, KindSpec] = {s.kind: s for s in (Threshold(), Rate(), NoData(), Event())}


def describe(rule: Rule) -> str:
    """The rule's condition in a few words, e.g. ``temperature > 80 for 60s``."""
    return SPECS[rule.kind].describe(rule)


def validate(rule: Rule) -> Rule:
    """Return ``rule`` if it is complete and consistent, else raise :class:`RuleError`."""
    if not rule.name.strip():
        raise RuleError("the rule name must not be empty")
    spec = SPECS.get(rule.kind)
    if spec is None:
        raise RuleError(f"unknown rule kind {rule.kind!r} (use {', '.join(SPECS)})")
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
    if rule.measurement is not None and rule.measurement not in MEASUREMENTS.values():
        raise RuleError(f"unknown measurement {rule.measurement!r} (use {', '.join(MEASUREMENTS.values())})")
    spec.validate(rule)
    return rule
