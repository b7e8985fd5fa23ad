"""Alert evaluation on the stream: points, status changes and clock ticks in, transitions out.

Pure: no I/O, no clock. One state per (rule, device); at most one firing alert per pair.
Per point, fields without a rule cost one dict lookup.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from core.model import Point, StatusChange
from registry.alerts.rules import EVENTS_MEASUREMENT, LEVEL_RANK, Rule, breaches, cleared

OPEN, UPDATE, RESOLVE = "open", "update", "resolve"
Key = tuple[int, str]


class DeviceLike(Protocol):
    """What the engine needs to know of a device (registry.directory.DeviceInfo has it)."""

    @property
    def type(self) -> str: ...
    @property
    def site(self) -> str | None: ...
    @property
    def status(self) -> str: ...


Devices = Mapping[str, DeviceLike]


@dataclass(frozen=True, slots=True)
class Transition:
    """What happened to the alert of (rule, device): ``open``, ``update`` (another breach) or
    ``resolve`` (condition cleared). ``at`` is epoch seconds."""

    action: str
    rule_id: int
    device_id: str
    at: float
    value: float | None = None
    message: str = ""
    severity: str = ""
    site: str | None = None


@dataclass(slots=True)
class _State:
    firing: bool = False
    pending_since: float | None = None  # start of the current breaching run (point time)
    pending_arrival: float = 0.0  # when that run's first point arrived (wall time)
    last_ts: float | None = None  # newest point evaluated (point time)
    last_value: float | None = None
    last_breach: float | None = None  # rate/event: arrival time of the newest breach
    last_breaching: bool = False


def in_scope(rule: Rule, device_id: str, info: DeviceLike | None, tags: Mapping[str, str]) -> bool:
    """Does ``rule`` apply to the device? Registry data first, the point's tags as fallback."""
    if rule.scope == "all":
        return True
    if rule.scope == "device":
        return device_id == rule.scope_value
    if rule.scope == "type":
        return (info.type if info is not None else tags.get("device_type")) == rule.scope_value
    if rule.scope == "site":
        return (info.site if info is not None else tags.get("site")) == rule.scope_value
    return False


class Engine:
    """Evaluates enabled rules. Feed it with :meth:`observe`, :meth:`status` and :meth:`tick`."""

    def __init__(self, rules: Iterable[Rule] = (), started: float = 0.0) -> None:
        self._states: dict[Key, _State] = {}
        self._last_seen: dict[str, float] = {}  # device -> arrival time of its newest point
        self._started = started
        self.rules: dict[int, Rule] = {}
        self._by_field: dict[str, list[Rule]] = {}
        self._event_rules: list[Rule] = []
        self._nodata_rules: list[Rule] = []
        self.set_rules(rules)

    # -- configuration and restore ----------------------------------------------------------

    def set_rules(self, rules: Iterable[Rule]) -> None:
        """Replace the rule set; state is kept for rules still present, dropped for the rest."""
        self.rules = {r.id: r for r in rules}
        self._by_field = {}
        for r in self.rules.values():
            if r.kind in ("threshold", "rate") and r.field:
                self._by_field.setdefault(r.field, []).append(r)
        self._event_rules = [r for r in self.rules.values() if r.kind == "event"]
        self._nodata_rules = [r for r in self.rules.values() if r.kind == "nodata"]
        self._states = {k: s for k, s in self._states.items() if k[0] in self.rules}

    def restore(self, rule_id: int, device_id: str, last_value: float | None, last_seen: float) -> None:
        """Mark (rule, device) as firing: an alert that is open in the database."""
        if rule_id not in self.rules:
            return
        st = self._states.setdefault((rule_id, device_id), _State())
        st.firing = True
        st.last_value = last_value
        st.last_breach = last_seen

    def sync_open(self, open_keys: set[Key]) -> None:
        """Forget firing states whose alert is no longer open (a person resolved it)."""
        for key, st in self._states.items():
            if st.firing and key not in open_keys:
                st.firing = False
                st.pending_since = None

    def firing(self) -> set[Key]:
        return {k for k, s in self._states.items() if s.firing}

    # -- inputs -------------------------------------------------------------------------------

    def observe(self, points: Sequence[Point], now: float, devices: Devices) -> list[Transition]:
        """Evaluate a batch of stored points that arrived at ``now``."""
        out: list[Transition] = []
        by_field = self._by_field
        for p in points:
            if p.measurement == EVENTS_MEASUREMENT and self._event_rules:
                self._event(p, now, devices, out)
            if not by_field:
                continue
            for name, raw in p.fields.items():
                rules = by_field.get(name)
                if rules is None or isinstance(raw, str):
                    continue
                value = float(raw)
                ts = p.ts_ns / 1e9
                info = devices.get(p.device_id)
                for r in rules:
                    if r.measurement and r.measurement != p.measurement:
                        continue
                    if not in_scope(r, p.device_id, info, p.tags):
                        continue
                    if r.kind == "threshold":
                        self._threshold(r, p.device_id, info, ts, value, now, out)
                    else:
                        self._rate(r, p.device_id, info, ts, value, now, out)
        seen = {p.device_id for p in points}
        for dev in seen:
            self._last_seen[dev] = now
            for r in self._nodata_rules:
                st = self._states.get((r.id, dev))
                if st is not None and st.firing:
                    st.firing = False
                    out.append(Transition(RESOLVE, r.id, dev, now, message="data again"))
        return out

    def status(self, changes: Sequence[StatusChange], devices: Devices) -> list[Transition]:
        """A device announcing itself counts as seen, so nodata rules start watching it."""
        for c in changes:
            if c.online:
                self._last_seen.setdefault(c.device_id, c.at)
        return []

    def tick(self, now: float, devices: Devices) -> list[Transition]:
        """Time-driven checks: nodata, quiet periods, and holds of a device that went silent while
        breaching (its last value is taken to persist; the hold counts from its arrival)."""
        out: list[Transition] = []
        for (rule_id, dev), st in self._states.items():
            r = self.rules[rule_id]
            if r.kind == "threshold" and not st.firing and st.pending_since is not None:
                if st.last_breaching and now - st.pending_arrival >= r.hold_s:
                    st.firing = True
                    out.append(self._open(r, dev, devices.get(dev), now, st.last_value))
            elif (
                r.kind in ("rate", "event")
                and st.firing
                and st.last_breach is not None
                and now - st.last_breach >= r.quiet_s
            ):
                st.firing = False
                st.pending_since = None
                out.append(Transition(RESOLVE, r.id, dev, now, st.last_value, message=f"quiet for {r.quiet_s:g}s"))
        if self._nodata_rules:
            watched = dict.fromkeys((d for d, info in devices.items() if info.status == "active"), self._started)
            watched.update(self._last_seen)
            for r in self._nodata_rules:
                for dev, seen in watched.items():
                    if now - seen < r.hold_s:
                        continue
                    if not in_scope(r, dev, devices.get(dev), {}):
                        continue
                    st = self._states.setdefault((r.id, dev), _State())
                    if not st.firing:
                        st.firing = True
                        out.append(self._open(r, dev, devices.get(dev), now, None, f"no data for {now - seen:.0f}s"))
        return out

    # -- per kind -----------------------------------------------------------------------------

    def _open(
        self, r: Rule, dev: str, info: DeviceLike | None, at: float, value: float | None, detail: str | None = None
    ) -> Transition:
        text = (
            detail if detail is not None else (r.describe() if value is None else f"{r.describe()} (value {value:g})")
        )
        return Transition(
            OPEN, r.id, dev, at, value, f"{r.name}: {text}", r.severity, info.site if info is not None else None
        )

    def _threshold(
        self, r: Rule, dev: str, info: DeviceLike | None, ts: float, value: float, now: float, out: list[Transition]
    ) -> None:
        st = self._states.get((r.id, dev))
        if st is None:
            st = self._states[(r.id, dev)] = _State()
        if st.last_ts is not None and ts < st.last_ts:
            return  # out of order: the newer point already decided
        assert r.op is not None and r.threshold is not None
        st.last_ts, st.last_value = ts, value
        hit = breaches(r.op, value, r.threshold)
        st.last_breaching = hit
        if st.firing:
            if hit:
                out.append(Transition(UPDATE, r.id, dev, ts, value))
            elif cleared(r.op, value, r.threshold, r.hysteresis):
                st.firing = False
                st.pending_since = None
                out.append(Transition(RESOLVE, r.id, dev, ts, value, message="back to normal"))
        elif hit:
            if st.pending_since is None:
                st.pending_since, st.pending_arrival = ts, now
            if ts - st.pending_since >= r.hold_s:
                st.firing = True
                out.append(self._open(r, dev, info, ts, value))
        else:
            st.pending_since = None

    def _rate(
        self, r: Rule, dev: str, info: DeviceLike | None, ts: float, value: float, now: float, out: list[Transition]
    ) -> None:
        st = self._states.get((r.id, dev))
        if st is None:
            st = self._states[(r.id, dev)] = _State()
        prev_ts, prev_value = st.last_ts, st.last_value
        if prev_ts is not None and ts <= prev_ts:
            return
        st.last_ts, st.last_value = ts, value
        if prev_ts is None or prev_value is None:
            return
        rate = (value - prev_value) / (ts - prev_ts)
        assert r.op is not None and r.threshold is not None
        if not breaches(r.op, abs(rate) if r.absolute else rate, r.threshold):
            st.pending_since = None
            return
        st.last_breach = now
        if st.firing:
            out.append(Transition(UPDATE, r.id, dev, ts, rate))
            return
        if st.pending_since is None:
            st.pending_since = prev_ts
        if ts - st.pending_since >= r.hold_s:
            st.firing = True
            out.append(self._open(r, dev, info, ts, rate))

    def _event(self, p: Point, now: float, devices: Devices, out: list[Transition]) -> None:
        level = p.tags.get("level") or p.fields.get("level")
        rank = LEVEL_RANK.get(level) if isinstance(level, str) else None
        if rank is None:
            return
        info = devices.get(p.device_id)
        ts = p.ts_ns / 1e9
        for r in self._event_rules:
            if rank < LEVEL_RANK[r.level or "error"] or not in_scope(r, p.device_id, info, p.tags):
                continue
            st = self._states.get((r.id, p.device_id))
            if st is None:
                st = self._states[(r.id, p.device_id)] = _State()
            st.last_breach = now
            if st.firing:
                out.append(Transition(UPDATE, r.id, p.device_id, ts))
                continue
            st.firing = True
            code, msg = p.fields.get("code"), p.fields.get("message")
            detail = " ".join(str(x) for x in (level, code, msg) if x not in (None, ""))
            out.append(self._open(r, p.device_id, info, ts, None, detail))
