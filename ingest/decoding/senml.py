"""SenML JSON packs (RFC 8428): resolution (§4.5-4.6) and grouping into points. Pure.

``resolve(records, now)`` applies the base fields (``bn`` prefixed to ``n``, ``bt`` added to
``t``, ``bv`` to ``v``, ``bs`` to ``s``, ``bu`` used where a record has no ``u``), carries them
to the following records, turns times below 2**28 into times relative to ``now`` and returns
the records in chronological order (stable), as RFC 8428 §4.6 asks of resolved records.
Records holding only base fields yield nothing. Unknown labels are ignored unless they end
in ``_`` (RFC 8428 §4.4: MUST reject); ``bver`` above 10 or differing within a pack is rejected.

``to_points(records, device_id, measurement)`` groups resolved records into as few points as
possible: one point per (time, unit); the unit becomes the tag ``unit``. Field names come from
``field_name`` (rule in its docstring); a sum becomes the field ``{name}_sum``; ``vd`` keeps its
base64url text as a string field. One field name carrying two value kinds (``v``/``vs``/
``vb``/``vd``; sums count as ``v``) in a pack is rejected; the same field twice in one
(time, unit) keeps the last, as InfluxDB would.

``plain_points`` is the same for the common pack shapes (numbers ``v`` under ``n``/``u``/``t``,
``bn``/``bt``/``bu`` in the first record, times in order) in one pass, most of it C-level ``map`` over
the records; it steps aside (None) for anything else, and the general path decides. It took a
pack of ten from ~19 to ~7 µs to decode; a property test holds both paths to the same points.

Every problem raises ``Rejected(Reason.INVALID_SENML, detail)`` (``BAD_TIMESTAMP`` for a
resolved time outside 1970..2262), except names (ingest.decoding.names): a field name or unit outside
the allowed characters is ``INVALID_NAME``, a field named like a tag or ``time`` is
``RESERVED_NAME``.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from functools import lru_cache
from itertools import repeat
from operator import add, itemgetter
from typing import Any, NamedTuple

from core.model import FieldValue, Kind, Point, Reason, Rejected
from ingest.decoding.codecs import Source, json_loads, parse_json
from ingest.decoding.names import check_field_key, check_tag_value, has_control
from ingest.decoding.timestamps import BadTimestamp, seconds_to_ns

SENML_VERSION = 10
RELATIVE_LIMIT = 2**28
DEVICE_VALUE_FIELD = "value"

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-:./_]*")
_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


class ResolvedRecord(NamedTuple):
    """One resolved SenML record. ``kind`` is the value label (v/vs/vb/vd) or "" (sum only)."""

    name: str
    time: float
    unit: str | None = None
    kind: str = "v"
    value: FieldValue | None = None
    sum: float | None = None
    update_time: float | None = None

    def as_senml(self) -> dict[str, Any]:
        """The record in resolved SenML JSON form (labels n, u, t, v|vs|vb|vd, s, ut)."""
        out: dict[str, Any] = {"n": self.name}
        if self.unit is not None:
            out["u"] = self.unit
        out["t"] = self.time
        if self.kind:
            out[self.kind] = self.value
        if self.sum is not None:
            out["s"] = self.sum
        if self.update_time is not None:
            out["ut"] = self.update_time
        return out


def _bad(detail: str) -> Rejected:
    return Rejected(Reason.INVALID_SENML, detail)


def _num(x: object, label: str, i: int) -> float:
    if type(x) is float:
        f = x
    elif type(x) is int:
        try:
            f = float(x)
        except OverflowError:
            raise _bad(f"record {i}: {label} out of range") from None
    else:
        raise _bad(f"record {i}: {label} must be a number")
    if not math.isfinite(f):
        raise _bad(f"record {i}: {label} is not finite")
    return f


def _str(x: object, label: str, i: int) -> str:
    if type(x) is not str:
        raise _bad(f"record {i}: {label} must be a string")
    return x


def valid_unicode(s: str) -> bool:
    """False for strings with lone surrogates (JSON ``\\ud800`` escapes), which no store can take."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_data(x: object, i: int) -> str:
    s = _str(x, "vd", i)
    body = s.rstrip("=")
    padding = len(s) - len(body)
    if not _B64URL.issuperset(body) or len(body) % 4 == 1 or (padding and padding != -len(body) % 4):
        raise _bad(f"record {i}: vd is not base64url")
    try:
        base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raise _bad(f"record {i}: vd is not base64url") from None
    return s


def resolve(records: object, now: float) -> list[ResolvedRecord]:
    """Resolve a SenML pack (the parsed JSON array) against ``now`` (epoch seconds)."""
    if type(records) is not list:
        raise _bad("a SenML pack is a JSON array of records")
    bn = ""
    bt = 0.0
    bu: str | None = None
    bv = 0.0
    bs: float | None = None
    version = SENML_VERSION
    out: list[ResolvedRecord] = []
    ordered = True
    last = -math.inf
    for i, rec in enumerate(records):
        if type(rec) is not dict:
            raise _bad(f"record {i} is not a JSON object")
        n = ""
        u: str | None = None
        t = 0.0
        kind = ""
        value: Any = None
        s: float | None = None
        ut: float | None = None
        nvalues = 0
        regular = False
        for key, x in rec.items():
            if key == "n":
                n = _str(x, "n", i)
                regular = True
            elif key == "v":
                value = _num(x, "v", i)
                kind = "v"
                nvalues += 1
            elif key == "u":
                u = _str(x, "u", i)
                regular = True
            elif key == "t":
                t = _num(x, "t", i)
                regular = True
            elif key == "bn":
                bn = _str(x, "bn", i)
            elif key == "bt":
                bt = _num(x, "bt", i)
            elif key == "bu":
                bu = _str(x, "bu", i)
            elif key == "vs":
                value = _str(x, "vs", i)
                if not value.isascii() and not valid_unicode(value):
                    raise _bad(f"record {i}: vs has a lone surrogate")
                if has_control(value):
                    raise _bad(f"record {i}: vs holds a control character (newline, CR, NUL, C1, U+2028, bidi…)")
                kind = "vs"
                nvalues += 1
            elif key == "vb":
                if type(x) is not bool:
                    raise _bad(f"record {i}: vb must be true or false")
                value = x
                kind = "vb"
                nvalues += 1
            elif key == "vd":
                value = _check_data(x, i)
                kind = "vd"
                nvalues += 1
            elif key == "s":
                s = _num(x, "s", i)
            elif key == "ut":
                ut = _num(x, "ut", i)
                regular = True
            elif key == "bv":
                bv = _num(x, "bv", i)
            elif key == "bs":
                bs = _num(x, "bs", i)
            elif key == "bver":
                if type(x) is not int or x < 1:
                    raise _bad(f"record {i}: bver must be a positive integer")
                if x > SENML_VERSION:
                    raise _bad(f"record {i}: SenML version {x} is not supported")
                if i and x != version:
                    raise _bad(f"record {i}: bver {x} differs from the pack's version {version}")
                version = x
            elif key.endswith("_"):
                raise _bad(f"record {i}: unknown must-understand label {key[:40]!r}")
        if nvalues > 1:
            raise _bad(f"record {i}: more than one value field")
        if not nvalues and s is None:
            if regular:
                raise _bad(f"record {i}: no value (v, vs, vb, vd or s)")
            continue  # a record of base fields only
        name = bn + n
        if not name:
            raise _bad(f"record {i}: no name (n or bn)")
        time = bt + t
        if time < RELATIVE_LIMIT:
            time += now
        if not math.isfinite(time):
            raise _bad(f"record {i}: time out of range")
        if kind == "v":
            value = value + bv
            if not math.isfinite(value):
                raise _bad(f"record {i}: v + bv is not finite")
        if s is not None or bs is not None:
            s = (s or 0.0) + (bs or 0.0)
            if not math.isfinite(s):
                raise _bad(f"record {i}: s + bs is not finite")
        if time < last:
            ordered = False
        last = time
        out.append(ResolvedRecord(name, time, bu if u is None else u, kind, value, s, ut))
    if not ordered:
        out.sort(key=lambda r: r.time)
    return out


@lru_cache(maxsize=65536)
def field_name(name: str, device_id: str) -> str:
    """The field name for a resolved SenML name sent by ``device_id``.

    The rule: if the name starts with the device's own name -- ``{device_id}`` itself, or a
    URN ending in ``:{device_id}`` such as ``urn:dev:ow:{device_id}`` -- followed by the end
    of the name, ``:`` or ``/``, that prefix and the separator are cut off and the rest is the
    field name (``urn:dev:ow:10e2:voltage`` from device ``10e2`` -> ``voltage``;
    ``10e2/door/open`` -> ``door/open``). A name that is exactly the device's own name
    becomes the field ``value``. Any other name (a bare ``temperature``, or another
    device's name in a gateway pack) is kept whole, so nothing from two sources collides.
    Names must satisfy RFC 8428 §4.5.1 (``[A-Za-z0-9][A-Za-z0-9-:./_]*``) and the field name
    the rules of ingest.decoding.names (length, not named like a tag).
    """
    if not _NAME_RE.fullmatch(name):
        raise _bad(f"name {name[:64]!r} is not a valid SenML name (RFC 8428 4.5.1)")
    cut = -1
    d = len(device_id)
    if name.startswith(device_id) and (len(name) == d or name[d] in ":/"):
        cut = d
    elif name.startswith("urn:"):
        needle = ":" + device_id
        p = name.find(needle, 3)
        while p >= 0:
            end = p + len(needle)
            if len(name) == end or name[end] in ":/":
                cut = end
                break
            p = name.find(needle, p + 1)
    field = name if cut < 0 else (name[cut + 1 :] or DEVICE_VALUE_FIELD)
    check_field_key(field)
    return field


def to_points(records: list[ResolvedRecord], device_id: str, measurement: str) -> list[Point]:
    """Group resolved records into points, one per (time, unit). See the module docstring."""
    groups: dict[tuple[int, str | None], dict[str, FieldValue]] = {}
    kinds: dict[str, str] = {}
    for r in records:
        try:
            ts = seconds_to_ns(r.time)
        except BadTimestamp as e:
            raise Rejected(Reason.BAD_TIMESTAMP, f"{r.name[:64]}: {e}") from None
        unit = r.unit or None
        if unit is not None:
            check_tag_value("unit", unit)
        fname = field_name(r.name, device_id)
        key = (ts, unit)
        fields = groups.get(key)
        if fields is None:
            fields = groups[key] = {}
        if r.kind:
            if kinds.setdefault(fname, r.kind) != r.kind:
                raise _bad(f"field {fname!r} carries both {kinds[fname]} and {r.kind} values")
            fields[fname] = r.value  # type: ignore[assignment]
        if r.sum is not None:
            sname = fname + "_sum"
            check_field_key(sname)
            if kinds.setdefault(sname, "v") != "v":
                raise _bad(f"field {sname!r} carries both {kinds[sname]} and s values")
            fields[sname] = r.sum
    return [
        Point(measurement, device_id, fields, ts, {"unit": unit} if unit else {})
        for (ts, unit), fields in groups.items()
    ]


_PLAIN_FIRST = frozenset({"bn", "bt", "bu", "n", "v", "u", "t"})
_PLAIN_REST = frozenset({"n", "v", "u", "t"})
_NUMBER = (float, int)  # by ``type(x) in``: bool is not a number here
_good_units: set[str] = set()
_ABSENT: Any = object()


def plain_points(records: object, now: float, device_id: str, measurement: str) -> list[Point] | None:
    """``to_points(resolve(records, now), ...)`` for the common pack shape, in one pass: every
    record a number ``v`` with ``n``/``u``/``t`` only (``bn``/``bt``/``bu`` in the first), times in order.
    None for any other pack or any problem: the general path then decides (and names the error).
    tests/test_senml.py holds the two paths to the same points."""
    if type(records) is not list or not records:
        return None
    first = records[0]
    if type(first) is not dict or not first.keys() <= _PLAIN_FIRST:
        return None
    bn = first.get("bn", "")
    bt = first.get("bt", 0.0)
    bu = first.get("bu", _ABSENT)  # null is not absent: the general path refuses it
    if type(bn) is not str or type(bt) not in _NUMBER or (bu is not _ABSENT and type(bu) is not str):
        return None
    if bu is _ABSENT:
        bu = None
    if len(records) > 1 and "u" not in first and "t" not in first:  # one time, one unit for all
        uniform = _uniform(records, first, bn, bt, now, device_id)
        if uniform is not None:
            unit = bu or None
            if unit is not None and not _unit_ok(unit):
                return None
            return [Point(measurement, device_id, uniform[1], uniform[0], {"unit": unit} if unit else {})]
    groups: dict[tuple[int, str | None], dict[str, FieldValue]] = {}
    last = -math.inf
    try:
        bt = float(bt)
        for i, rec in enumerate(records):
            if type(rec) is not dict or (i and not rec.keys() <= _PLAIN_REST):
                return None
            n = rec.get("n", "")
            v = rec.get("v")
            t = rec.get("t", 0.0)
            u = rec.get("u", _ABSENT)
            if type(n) is not str or type(v) not in _NUMBER or type(t) not in _NUMBER:
                return None
            if u is _ABSENT:
                u = None
            elif type(u) is not str:
                return None
            name = bn + n
            time = bt + float(t)
            if time < RELATIVE_LIMIT:
                time += now
            value = float(v) + 0.0  # type: ignore[arg-type]  # as resolve: v + bv, with bv 0 (turns -0.0 into 0.0)
            if not name or time < last or not math.isfinite(time) or not math.isfinite(value):
                return None
            last = time
            unit = (bu if u is None else u) or None
            if unit is not None and not _unit_ok(unit):
                return None
            key = (seconds_to_ns(time), unit)
            fields = groups.get(key)
            if fields is None:
                fields = groups[key] = {}
            fields[field_name(name, device_id)] = value
    except (Rejected, BadTimestamp, OverflowError):
        return None
    return [
        Point(measurement, device_id, fields, ts, {"unit": unit} if unit else {})
        for (ts, unit), fields in groups.items()
    ]


def _unit_ok(unit: str) -> bool:
    """The unit may be a tag value (checked once per unit)."""
    if unit not in _good_units:
        try:
            check_tag_value("unit", unit)
        except Rejected:
            return False
        if len(_good_units) >= 65536:
            _good_units.clear()
        _good_units.add(unit)
    return True


def _uniform(records: list[Any], first: dict[str, Any], bn: str, bt: float | int, now: float, device_id: str
             ) -> tuple[int, dict[str, FieldValue]] | None:  # fmt: skip
    """One point for a pack whose records after the first hold exactly ``n`` and ``v`` (and the first
    no ``t`` or ``u``: one time, one unit), built by C-level maps over the records; None if it is not
    that shape."""
    rest = records[1:]
    try:
        if set(map(len, rest)) != {2}:  # with both "n" and "v" found below: exactly those two keys
            return None
        names = (first.get("n", ""), *map(_get_n, rest))
        values = [first.get("v"), *map(_get_v, rest)]
        if not set(map(type, values)) <= _NUMBERS:  # names: a non-string fails in add/field_name
            return None
        time = float(bt)  # no record has a "t" of its own
        if time < RELATIVE_LIMIT:
            time += now
        floats = list(map(add, values, repeat(0.0)))  # as resolve: v + bv (ints to float, -0.0 to 0.0)
        if not math.isfinite(time) or not math.isfinite(sum(floats)):
            return None
        key = (device_id, bn, names)
        fnames = _pack_names.get(key)
        if fnames is None:
            if not bn and not all(names):
                return None
            fnames = tuple(map(field_name, map(add, repeat(bn), names), repeat(device_id)))
            if len(_pack_names) >= 4096:
                _pack_names.clear()
            _pack_names[key] = fnames
        return seconds_to_ns(time), dict(zip(fnames, floats, strict=True))
    except (Rejected, BadTimestamp, OverflowError, KeyError, TypeError, AttributeError):
        return None


_pack_names: dict[tuple[str, str, tuple[str, ...]], tuple[str, ...]] = {}  # field names of a pack's names
_NUMBERS = frozenset({float, int})
_get_n = itemgetter("n")
_get_v = itemgetter("v")


class SenmlJson:
    """The SenML JSON codec (RFC 8428, a JSON array) for telemetry and metrics."""

    name = "senml+json"
    kinds = frozenset({Kind.TELEMETRY, Kind.METRICS})
    first_bytes = frozenset(b"[")

    def __init__(self) -> None:
        self._loads = json_loads()

    def decode(self, source: Source, payload: bytes, now_ns: int, latest_ns: int) -> list[Point]:
        records = parse_json(payload, self._loads, source.fast_json)
        points = plain_points(records, now_ns / 1e9, source.device_id, source.measurement)
        if points is None:
            resolved = resolve(records, now_ns / 1e9)
            if not resolved:
                raise Rejected(Reason.NO_FIELDS, "SenML pack has no record with a value")
            points = to_points(resolved, source.device_id, source.measurement)
        if len(points) == 1:  # one (time, unit): at most one unit; the fields are the point's
            p = points[0]
            if len(p.fields) > source.max_fields:
                raise Rejected(
                    Reason.TOO_MANY_FIELDS, f"{len(p.fields)} fields in one pack (limit {source.max_fields})"
                )
            if p.ts_ns > latest_ns:
                raise Rejected(Reason.FUTURE_TIMESTAMP, f"SenML time is {(p.ts_ns - now_ns) / 1e9:.0f}s after arrival")
            if source.max_units >= 1 or "unit" not in p.tags:
                return points
        keys = set().union(*(p.fields for p in points))
        if len(keys) > source.max_fields:
            raise Rejected(Reason.TOO_MANY_FIELDS, f"{len(keys)} fields in one pack (limit {source.max_fields})")
        units = {p.tags["unit"] for p in points if "unit" in p.tags}
        if len(units) > source.max_units:
            raise Rejected(
                Reason.TOO_MANY_FIELDS, f"{len(units)} distinct units in one pack (limit {source.max_units})"
            )
        for p in points:
            if p.ts_ns > latest_ns:
                raise Rejected(
                    Reason.FUTURE_TIMESTAMP,
                    f"SenML time is {(p.ts_ns - now_ns) / 1e9:.0f}s after arrival",
                )
        return points
