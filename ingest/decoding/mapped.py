"""Payload readers for mapped topics (``Source.codec``): JSON objects read by paths, bare values,
status words. Pure, no I/O. The rules that pick them are in ``ingest.decoding.mapping_rule``.

Every reader ends in the same checks as the built-in contract: field names through
``ingest.decoding.names`` (allow-list, reserved names), numbers as finite floats, string values
without control characters, at most ``max_fields`` fields and ``max_units`` units per message,
units as tag values (a declared unit goes with its point as ``Point.declared``, one the payload sent
is the point's ``unit`` tag: ``ingest.decoding.units``); a timestamp after ``latest_ns`` is
FUTURE_TIMESTAMP. A message that yields no field is NO_FIELDS with the reason, so it is
dead-lettered (and acknowledged), never left unacknowledged.

Time (:class:`TimeSpec`): a path into the object and a format: ``auto`` (a number read by magnitude
as epoch s/ms/µs/ns, or RFC 3339), ``epoch_s``/``epoch_ms``/``epoch_us``/``epoch_ns``, ``rfc3339``
(an offset is required) or ``local``: ISO 8601 date and time without an offset, read in the
mapping's ``timezone`` (an IANA name; an offset, when one is present, wins). No path, or the
path absent from a message: the arrival time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo

from core.model import DeclaredUnits, FieldValue, Kind, Point, Reason, Rejected, StatusChange
from ingest.decoding.codecs import Source, json_loads, parse_json
from ingest.decoding.names import check_field_key, check_string_value, check_tag_value
from ingest.decoding.senml import valid_unicode
from ingest.decoding.shapes import MAX_DEPTH, Plan, Shape, UnitOf, interned, shape_of
from ingest.decoding.timestamps import MAX_NS, BadTimestamp, to_ns
from ingest.decoding.units import Unit, declared_table

Path = tuple[str, ...]
TimeFormat = Literal["auto", "rfc3339", "epoch_s", "epoch_ms", "epoch_us", "epoch_ns", "local"]
TIME_FORMATS: tuple[str, ...] = ("auto", "rfc3339", "epoch_s", "epoch_ms", "epoch_us", "epoch_ns", "local")
_EPOCH_NS = {"epoch_s": 1_000_000_000, "epoch_ms": 1_000_000, "epoch_us": 1_000, "epoch_ns": 1}
MAX_PLANS = 256  # read plans kept per reader (payload shapes; then it starts over)
MAX_LAST_PLANS = 65536  # devices whose last plan is remembered (then it starts over)
MAX_PLANNED_BYTES = 8192  # a larger payload is read by the reference path only (bounds the plans' keys)


def path_of(dotted: str) -> Path:
    """``"accel.x"`` -> ``("accel", "x")``; an empty part is refused."""
    parts = tuple(dotted.split("."))
    if not all(parts):
        raise ValueError(f"path {dotted!r} has an empty part")
    return parts


def lookup(obj: Any, path: Path) -> Any:
    """The value at ``path`` (dict keys; a decimal part indexes a list), or None when absent."""
    for key in path:
        if type(obj) is dict:
            obj = obj.get(key)
        elif type(obj) is list and key.isdigit() and int(key) < len(obj):
            obj = obj[int(key)]
        else:
            return None
    return obj


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


_SIXTY = {f"{i:02d}": i for i in range(60)}
_NO_FAST_HOUR = -1
MAX_CACHED_HOURS = 1024
MAX_CACHED_SECONDS = 4096  # local times read (a fleet's devices report the same seconds); then it starts over


@dataclass(frozen=True, slots=True)
class TimeSpec:
    path: Path
    format: TimeFormat = "auto"
    timezone: str = "UTC"
    # local time ``YYYY-MM-DDTHH:MM:SS``: the hour's start (ns) by its first 13 characters, when the
    # zone's offset is the same all through that hour (else _NO_FAST_HOUR): minutes and seconds add
    _hours: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    # ... and each such time read from its hour's start, as read (a pure function of the text)
    _seconds: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def ns(self, obj: Any, now_ns: int, latest_ns: int) -> int:
        path = self.path
        raw = obj.get(path[0]) if len(path) == 1 and type(obj) is dict else lookup(obj, path)
        if raw is None:
            return now_ns
        ts = self._seconds.get(raw) if type(raw) is str else None  # a local time read before (_parse)
        if ts is None:
            try:
                ts = self._parse(raw)
            except BadTimestamp as e:
                raise Rejected(Reason.BAD_TIMESTAMP, f"{'.'.join(self.path)}: {e}") from None
        if ts > latest_ns:
            raise Rejected(Reason.FUTURE_TIMESTAMP, f"time is {(ts - now_ns) / 1e9:.0f}s after arrival")
        return ts

    def _parse(self, raw: object) -> int:
        fmt = self.format
        if fmt == "auto":
            return to_ns(raw)
        if fmt == "rfc3339":
            if type(raw) is not str:
                raise BadTimestamp("an RFC 3339 time must be a string")
            return to_ns(raw)
        if fmt == "local":
            if type(raw) is not str:
                raise BadTimestamp("a local time must be a string")
            known = self._seconds.get(raw)
            if known is not None:
                return known
            if len(raw) == 19 and raw[13] == ":" and raw[16] == ":":  # Tasmota's form: whole seconds
                minutes, seconds = _SIXTY.get(raw[14:16]), _SIXTY.get(raw[17:19])
                if minutes is not None and seconds is not None:
                    start = self._hours.get(raw[:13])
                    if start is None:
                        start = self._hour(raw[:13])
                    if start != _NO_FAST_HOUR:
                        ns = start + (minutes * 60 + seconds) * 1_000_000_000
                        if len(self._seconds) >= MAX_CACHED_SECONDS:
                            self._seconds.clear()
                        self._seconds[raw] = ns
                        return ns
            return self._local(raw)
        if type(raw) is int:
            ns = raw * _EPOCH_NS[fmt]
        elif type(raw) is float and raw - raw == 0.0:
            ns = round(raw * _EPOCH_NS[fmt] / 1_000) * 1_000 if fmt != "epoch_ns" else int(raw)
        else:
            raise BadTimestamp(f"{fmt} time must be a finite number")
        if not 0 <= ns <= MAX_NS:
            raise BadTimestamp("time out of range")
        return ns

    def _local(self, raw: str) -> int:
        """The reference reading of a local time (the fast path above must agree with it)."""
        try:
            t = datetime.fromisoformat(raw)
        except ValueError:
            raise BadTimestamp(f"not an ISO 8601 local time: {raw[:40]!r}") from None
        if t.tzinfo is None:
            t = t.replace(tzinfo=zone(self.timezone))
        ns = round(t.timestamp() * 1e6) * 1_000
        if not 0 <= ns <= MAX_NS:
            raise BadTimestamp("time out of range")
        return ns

    def _hour(self, hour: str) -> int:
        """The start of ``hour`` (``YYYY-MM-DDTHH``) if the whole hour has one offset, else _NO_FAST_HOUR."""
        try:
            start, end = self._local(hour + ":00:00"), self._local(hour + ":59:59")
        except BadTimestamp:
            start = end = _NO_FAST_HOUR
        if end - start != 3599 * 1_000_000_000:
            start = _NO_FAST_HOUR
        if len(self._hours) >= MAX_CACHED_HOURS:
            self._hours.clear()
        self._hours[hour] = start
        return start


def field_value(name: str, v: Any) -> FieldValue:
    """A JSON value as a field value (numbers -> float), or Rejected as the contract would."""
    tv = type(v)
    if tv is float:
        if v - v != 0.0:
            raise Rejected(Reason.NON_FINITE, f"field {name[:32]!r} is not finite")
        return float(v)
    if tv is int:
        try:
            return float(v)
        except OverflowError:
            raise Rejected(Reason.NON_FINITE, f"field {name[:32]!r} is too large") from None
    if tv is bool:
        return bool(v)
    if tv is str:
        if not v.isascii() and not valid_unicode(v):
            raise Rejected(Reason.INVALID_UTF8, f"field {name[:32]!r} has a lone surrogate")
        check_string_value(name, v)
        return str(v)
    what = "null" if v is None else "an object" if tv is dict else "an array"
    raise Rejected(Reason.WRONG_TYPE, f"field {name[:32]!r} is {what}; fields are numbers, bools, strings")


def numeric_leaves(
    obj: dict[str, Any], separator: str, skip: frozenset[str] = frozenset(), bools: bool = False
) -> list[tuple[str, str, FieldValue]]:
    """Every number (and with ``bools`` every bool) under ``obj`` as (flattened name, leaf key,
    value); arrays, strings and keys in ``skip`` (at the top) are passed over, as is anything
    nested deeper than MAX_DEPTH."""
    out: list[tuple[str, str, FieldValue]] = []
    _leaves(obj, "", separator, skip, bools, 1, out)
    return out


def _leaves(
    node: dict[str, Any],
    prefix: str,
    separator: str,
    skip: frozenset[str],
    bools: bool,
    depth: int,
    out: list[tuple[str, str, FieldValue]],
) -> None:
    for k, v in node.items():
        if depth == 1 and k in skip:
            continue
        tv = type(v)
        if tv is int or tv is float:
            name = prefix + k
            out.append((name, k, field_value(name, v)))
        elif tv is bool and bools:
            out.append((prefix + k, k, v))
        elif tv is dict and depth < MAX_DEPTH:
            _leaves(v, prefix + k + separator, separator, skip, bools, depth + 1, out)


_good_names: set[str | tuple[str, str]] = set()  # field names and units already checked (they repeat)


def _remember(name: str | tuple[str, str]) -> None:
    if len(_good_names) >= 65536:
        _good_names.clear()
    _good_names.add(name)


def points_of(
    source: Source, fields: list[tuple[str, FieldValue, Unit | None]], ts: int, measurement: str | None = None
) -> list[Point]:
    """(name, value, unit) triples -> points, names and units checked, limits applied: one point
    for the fields without a unit or with a declared one (those units go with it as
    ``Point.declared``), one per unit a payload sent (the ``unit`` tag); in first-seen order."""
    if len(fields) > source.max_fields:
        raise Rejected(Reason.TOO_MANY_FIELDS, f"{len(fields)} fields in one message (limit {source.max_fields})")
    groups: dict[str | None, dict[str, FieldValue]] = {}
    declared: dict[str, str] = {}
    units: set[str] = set()
    good = _good_names
    for name, value, unit in fields:
        if name not in good:
            check_field_key(name)
            _remember(name)
        if unit is None:
            tag = None
        else:
            text = unit.text
            units.add(text)
            if unit.declared:
                declared[name] = text
                tag = None
            else:
                tag = text
        groups.setdefault(tag, {})[name] = value
    if len(units) > source.max_units:
        raise Rejected(Reason.TOO_MANY_FIELDS, f"{len(units)} distinct units in one message (limit {source.max_units})")
    for u in units:
        if ("unit", u) not in good:
            check_tag_value("unit", u)
            _remember(("unit", u))
    m = measurement or source.measurement
    units_of = interned(DeclaredUnits(declared)) if declared else None
    return [
        Point(m, source.device_id, f, ts, {"unit": u})
        if u is not None
        else Point(m, source.device_id, f, ts, {}, units_of)
        for u, f in groups.items()
    ]


def no_units(name: str, leaf: str, obj: dict[str, Any]) -> Unit | None:
    return None


def units_by_name(units: Mapping[str, str]) -> UnitOf:
    """A mapping's ``units`` table (field name -> unit): declared units."""
    table = declared_table(units)
    return lambda name, leaf, obj: table.get(name)


class JsonReadings:
    """A JSON object -> readings: the ``fields`` paths by name, or (``fields`` None) every numeric
    leaf flattened with ``separator``; time by ``time``; units by ``unit_of``, which may read the
    whole object only at the top-level keys named in ``unit_context`` (flattened readings are
    read by a plan per payload shape, ``ingest.decoding.shapes``, and those values key it)."""

    name = "mapped-json"

    def __init__(
        self,
        *,
        fields: Mapping[str, Path] | None = None,
        separator: str = ".",
        time: TimeSpec | None = None,
        unit_of: UnitOf = no_units,
        skip: frozenset[str] = frozenset(),
        bools: bool = False,
        unit_context: tuple[str, ...] = (),
    ) -> None:
        self.fields = dict(fields) if fields is not None else None
        self.bools = bools
        self.separator = separator
        self.time = time
        self.unit_of = unit_of
        self.skip = skip | ({time.path[0]} if time is not None and len(time.path) == 1 else set())
        self._loads = json_loads()
        self.unit_context = unit_context
        # flattened readings of a known shape are read by a compiled plan (ingest.decoding.shapes);
        # a subclass that adds readings of its own keeps the reference path
        self._plans: dict[Shape, Plan] | None = (
            {} if fields is None and type(self).readings is JsonReadings.readings else None
        )
        self._last: dict[str, Plan] = {}  # device -> the plan its last message of a known shape fitted

    def decode(self, source: Source, payload: bytes, now_ns: int, latest_ns: int) -> list[Point]:
        obj = parse_json(payload, self._loads, source.fast_json)
        if type(obj) is not dict:
            raise Rejected(Reason.WRONG_TYPE, "payload must be a JSON object")
        ts = self.time.ns(obj, now_ns, latest_ns) if self.time is not None else now_ns
        plans = self._plans
        if plans is None:
            return points_of(source, self.readings(obj), ts)
        last, device = self._last, source.device_id
        plan = last.get(device)  # a device sends the same shape over and over: try its last plan
        if plan is not None:
            planned = plan.read(source, obj, ts)
            if planned is not False:
                return planned if planned is not None else points_of(source, self.readings(obj), ts)
        key = (shape_of(obj), tuple(map(obj.get, self.unit_context)))
        try:
            plan = plans.get(key)
        except TypeError:  # a unit context value that is an object or array: no plan for it
            return points_of(source, self.readings(obj), ts)
        if plan is None:
            points = points_of(source, self.readings(obj), ts)  # checks every name and unit, or refuses
            if len(payload) <= MAX_PLANNED_BYTES:
                if len(plans) >= MAX_PLANS:
                    plans.clear()
                    last.clear()
                plan = Plan(obj, self.separator, self.skip, self.bools, self.unit_of, self.unit_context)
                plans[key] = plan
                self._remember(device, plan)
            return points
        self._remember(device, plan)
        planned = plan.points(source, obj, ts)
        if planned is not None:
            return planned
        return points_of(source, self.readings(obj), ts)

    def _remember(self, device: str, plan: Plan) -> None:
        if len(self._last) >= MAX_LAST_PLANS:
            self._last.clear()
        self._last[device] = plan

    def readings(self, obj: dict[str, Any]) -> list[tuple[str, FieldValue, Unit | None]]:
        unit_of = self.unit_of
        if self.fields is None:
            leaves = numeric_leaves(obj, self.separator, self.skip, self.bools)
            if not leaves:
                raise Rejected(Reason.NO_FIELDS, "no numeric value in the payload")
            return [(name, v, unit_of(name, leaf, obj)) for name, leaf, v in leaves]
        out: list[tuple[str, FieldValue, Unit | None]] = []
        for name, path in self.fields.items():
            raw = lookup(obj, path)
            if raw is not None:
                out.append((name, field_value(name, raw), unit_of(name, path[-1], obj)))
        if not out:
            wanted = ", ".join(".".join(p) for p in self.fields.values())
            raise Rejected(Reason.NO_FIELDS, f"none of the mapped fields ({wanted[:120]}) is in the payload")
        return out


_BOOLS = {"on": True, "off": False, "true": True, "false": False}


class BareValue:
    """A payload that is one value as text (``21.5``, ``ON``): the field ``field``. Numbers become
    floats (``nan`` is NON_FINITE), ``ON``/``OFF``/``true``/``false`` bools, other text a string."""

    name = "mapped-value"

    def __init__(self, field: str, unit: str | None = None) -> None:
        self.field = field
        self.unit = Unit(unit) if unit is not None else None  # the mapping's: declared

    def decode(self, source: Source, payload: bytes, now_ns: int, latest_ns: int) -> list[Point]:
        try:
            text = payload.decode("utf-8").strip()
        except UnicodeDecodeError as e:
            raise Rejected(Reason.INVALID_UTF8, f"invalid UTF-8 at byte {e.start}") from None
        if not text:
            raise Rejected(Reason.NO_FIELDS, "empty payload")
        value: FieldValue
        try:
            number = float(text)
        except ValueError:
            b = _BOOLS.get(text.lower())
            value = b if b is not None else field_value(self.field, text)
        else:
            value = field_value(self.field, number)
        return points_of(source, [(self.field, value, self.unit)], now_ns)


_STATUS_WORDS = {"online": True, "offline": False, "true": True, "false": False}


class StatusWords:
    """``online``/``offline`` (any case; also ``true``/``false``), the same as a JSON string, or a
    JSON object with it under ``state`` or ``status`` -> the device's status at arrival."""

    name = "mapped-status"

    def __init__(self) -> None:
        self._loads = json_loads()

    def decode(self, source: Source, payload: bytes, now_ns: int, latest_ns: int) -> StatusChange:
        usage = 'status must be online/offline, as a word, a JSON string or {"state": …}'
        try:
            text = payload.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise Rejected(Reason.WRONG_TYPE, usage) from None
        word = _STATUS_WORDS.get(text.lower())
        if word is None and text[:1] in ('"', "{"):
            try:
                obj = self._loads(text)
            except Exception:  # any parse failure is the same refusal
                raise Rejected(Reason.WRONG_TYPE, usage) from None
            value = obj.get("state", obj.get("status")) if type(obj) is dict else obj
            word = _STATUS_WORDS.get(value.strip().lower()) if type(value) is str else None
        if word is None:
            raise Rejected(Reason.WRONG_TYPE, usage)
        return StatusChange(source.device_id, word, now_ns / 1e9)


READING_KINDS = frozenset({Kind.TELEMETRY, Kind.METRICS})
MAPPED_KINDS = READING_KINDS | {Kind.STATUS}
