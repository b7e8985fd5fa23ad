"""Alert evaluation on the stream: points, status changes and clock ticks in, transitions out.

Pure: no I/O, no clock. One state per (rule, device); at most one firing alert per pair.
Per point, fields without a rule cost one dict lookup.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from core.model import DeviceEntry, Point, StatusChange
from registry.alerts.kinds import SPECS, Decision, KindSpec, State, describe
from registry.alerts.rules import EVENTS_MEASUREMENT, LEVEL_RANK, Rule
from registry.alerts.rules import OPEN as OPEN  # the actions re-exported: transitions are the engine's output
from registry.alerts.rules import RESOLVE as RESOLVE
from registry.alerts.rules import UPDATE as UPDATE

Key = tuple[int, str]


Devices = Mapping[str, DeviceEntry]


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


def in_scope(rule: Rule, device_id: str, info: DeviceEntry | None, tags: Mapping[str, str]) -> bool:
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


class RuleEngine:
    """Evaluates enabled rules. Feed it with :meth:`observe`, :meth:`status` and :meth:`tick`."""

    def __init__(self, rules: Iterable[Rule] = (), started: float = 0.0) -> None:
        self._states: dict[Key, State] = {}
        self._last_seen: dict[str, float] = {}  # device -> arrival time of its newest point
        self._started = started
        self.rules: dict[int, Rule] = {}
        self._by_field: dict[str, list[tuple[Rule, KindSpec]]] = {}
        self._event_rules: list[Rule] = []
        self._nodata_rules: list[Rule] = []
        self.set_rules(rules)

    # -- configuration and restore ----------------------------------------------------------

    def set_rules(self, rules: Iterable[Rule]) -> None:
        """Replace the rule set; state is kept for rules still present, dropped for the rest."""
        self.rules = {r.id: r for r in rules}
        self._by_field = {}
        for r in self.rules.values():
            if SPECS[r.kind].reads_fields and r.field:
                self._by_field.setdefault(r.field, []).append((r, SPECS[r.kind]))
        self._event_rules = [r for r in self.rules.values() if SPECS[r.kind].reads_events]
        self._nodata_rules = [r for r in self.rules.values() if SPECS[r.kind].watches_silence]
        self._states = {k: s for k, s in self._states.items() if k[0] in self.rules}

    def restore(self, rule_id: int, device_id: str, last_value: float | None, last_seen: float) -> None:
        """Mark (rule, device) as firing: an alert that is open in the database."""
        if rule_id not in self.rules:
            return
        st = self._states.setdefault((rule_id, device_id), State())
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
                for r, spec in rules:
                    if r.measurement and r.measurement != p.measurement:
                        continue
                    if not in_scope(r, p.device_id, info, p.tags):
                        continue
                    st = self._states.get((r.id, p.device_id))
                    if st is None:
                        st = self._states[(r.id, p.device_id)] = State()
                    o = spec.on_value(r, st, ts, value, now)
                    if o is not None:
                        self._emit(r, p.device_id, info, o, out)
        seen = {p.device_id for p in points}
        for dev in seen:
            self._last_seen[dev] = now
            for r in self._nodata_rules:
                st = self._states.get((r.id, dev))
                if st is not None:
                    self._emit(r, dev, devices.get(dev), SPECS[r.kind].on_seen(r, st, now), out)
        return out

    def announced(self, changes: Sequence[StatusChange]) -> None:
        """A device announcing itself counts as seen, so nodata rules start watching it (no
        transition comes of it: silence is judged on the next tick)."""
        for c in changes:
            if c.online:
                self._last_seen.setdefault(c.device_id, c.at)

    def tick(self, now: float, devices: Devices) -> list[Transition]:
        """Time-driven checks: each kind's ``on_tick`` (quiet periods, holds of a device that went
        silent while breaching), then silence for the kinds that watch it."""
        out: list[Transition] = []
        for (rule_id, dev), st in self._states.items():
            r = self.rules[rule_id]
            self._emit(r, dev, devices.get(dev), SPECS[r.kind].on_tick(r, st, now), out)
        if self._nodata_rules:
            watched = dict.fromkeys((d for d, info in devices.items() if info.status == "active"), self._started)
            watched.update(self._last_seen)
            for r in self._nodata_rules:
                spec = SPECS[r.kind]
                for dev, seen in watched.items():
                    if not spec.too_quiet(r, now - seen):
                        continue
                    if not in_scope(r, dev, devices.get(dev), {}):
                        continue
                    st = self._states.setdefault((r.id, dev), State())
                    self._emit(r, dev, devices.get(dev), spec.on_silence(r, st, now, now - seen), out)
        return out

    # -- per kind -----------------------------------------------------------------------------

    def _open(
        self, r: Rule, dev: str, info: DeviceEntry | None, at: float, value: float | None, detail: str | None = None
    ) -> Transition:
        text = detail if detail is not None else (describe(r) if value is None else f"{describe(r)} (value {value:g})")
        return Transition(
            OPEN, r.id, dev, at, value, f"{r.name}: {text}", r.severity, info.site if info is not None else None
        )

    def _emit(self, r: Rule, dev: str, info: DeviceEntry | None, o: Decision | None, out: list[Transition]) -> None:
        if o is None:
            return
        if o.action == OPEN:
            out.append(self._open(r, dev, info, o.at, o.value, o.message))
        else:
            out.append(Transition(o.action, r.id, dev, o.at, o.value, message=o.message or ""))

    def _event(self, p: Point, now: float, devices: Devices, out: list[Transition]) -> None:
        level = p.tags.get("level") or p.fields.get("level")
        rank = LEVEL_RANK.get(level) if isinstance(level, str) else None
        if rank is None:
            return
        info = devices.get(p.device_id)
        ts = p.ts_ns / 1e9
        code, msg = p.fields.get("code"), p.fields.get("message")
        detail = " ".join(str(x) for x in (level, code, msg) if x not in (None, ""))
        for r in self._event_rules:
            spec = SPECS[r.kind]
            if not spec.fires_on(r, rank) or not in_scope(r, p.device_id, info, p.tags):
                continue
            st = self._states.get((r.id, p.device_id))
            if st is None:
                st = self._states[(r.id, p.device_id)] = State()
            self._emit(r, p.device_id, info, spec.on_event(r, st, ts, now, detail), out)
