"""Points → InfluxDB line protocol. Pure and on the hot path: one pass, cached key escaping.

All numbers are written as floats (never the ``i`` suffix), so a field keeps one type whether a
device sent ``21`` or ``21.5``. Escaping follows the line-protocol spec, element by element:

- measurement: ``,`` and space;
- tag keys, tag values, field keys: ``,`` ``=`` and space;
- string field values: ``"`` and ``\\`` (the only escapes influxd undoes inside a string).

Some text has no faithful encoding, and guessing is how one device's data ends up in another's
series, so it raises :class:`Unencodable` and the store refuses just that point:

- a backslash anywhere in a measurement, tag or field key, or tag value: influxd 1.x's line
  scanner skips the character after any backslash while its unescaper only undoes ``\\,``
  ``\\=`` ``\\ `` ``\\"``, so no escaping of a literal backslash survives a round trip;
- a control character (newline, CR, NUL, tab…) in any of them (influxd reads a tab as a
  separator), or in a string value, where only tab is allowed (a raw newline ends a line);
- text that is not valid Unicode (a lone surrogate), an empty key or tag value, a measurement
  starting with ``#`` (a comment line), NaN/infinity.

Empty tag values are left out (InfluxDB has no empty tags). The decoder (ingest.decoding.names) refuses
all of this, and more, before a point is built; this is the second line of defence.
"""

from __future__ import annotations

import itertools
import math
import re
import sys
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

from core.model import Point


class Unencodable(ValueError):
    """The point cannot be expressed in line protocol as sent."""


_KEY_ESC = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ "})
_MEAS_ESC = str.maketrans({",": "\\,", " ": "\\ "})
_NAME_BAD = re.compile(r"[\x00-\x1f\x7f\\]")
_STRING_BAD = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_CACHE_MAX = 100_000
K = TypeVar("K", bound=Hashable)
_keys: dict[str, str] = {}
_measurements: dict[str, str] = {}
_heads: dict[str, str] = {}  # field key -> escaped key + '='
_series: dict[tuple[object, ...], str] = {}  # (measurement, device_id, *tag items) -> series key
_INT_FLOAT_MAX = int(sys.float_info.max)  # the largest int float() converts (a bigger one overflows)
_REPRS_MAX = 8192
_SAMPLE = 64  # points a batch learns float texts from
_reprs: dict[float, str] = {}  # finite non-zero float -> its repr (see encode_point)


def _check(text: str, what: str) -> None:
    if not text:
        raise Unencodable(f"empty {what}")
    bad = _NAME_BAD.search(text)
    if bad is not None:
        name = "a backslash" if bad.group() == "\\" else "a control character"
        raise Unencodable(f"{what} {text[:40]!r} holds {name}")
    _check_unicode(text, what)


def _check_unicode(text: str, what: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise Unencodable(f"{what} holds a lone surrogate") from None


def _remember(cache: dict[K, str], key: K, value: str) -> str:
    """Keep ``value`` under ``key`` in a bounded cache (emptied when full) and return it."""
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[key] = value
    return value


def escape_key(key: str) -> str:
    """A tag key, tag value or field key, escaped (cached: keys repeat)."""
    out = _keys.get(key)
    if out is None:
        _check(key, "key")
        out = _remember(_keys, key, key.translate(_KEY_ESC))
    return out


def escape_measurement(name: str) -> str:
    out = _measurements.get(name)
    if out is None:
        _check(name, "measurement")
        if name.startswith("#"):
            raise Unencodable(f"measurement {name[:40]!r} starts with '#' (a comment line)")
        out = name.translate(_MEAS_ESC)
        _measurements[name] = out
    return out


def escape_string(value: str) -> str:
    if _STRING_BAD.search(value) is not None:
        raise Unencodable("string value holds a control character")
    _check_unicode(value, "string value")
    if "\\" in value:
        value = value.replace("\\", "\\\\")
    if '"' in value:
        value = value.replace('"', '\\"')
    return f'"{value}"'


def _series_key(p: Point) -> str:
    head = f"{escape_measurement(p.measurement)},device_id={escape_key(p.device_id)}"
    if not p.tags:
        return head
    return head + "".join(
        f",{escape_key(k)}={escape_key(v)}" for k, v in sorted(p.tags.items()) if v != "" and k != "device_id"
    )


def series_key(p: Point) -> str:
    """``measurement,device_id=..,tag=..`` with tags sorted by key (the series identity); cached,
    since a device's series repeat on every message."""
    tags = p.tags
    key = (p.measurement, p.device_id, *tags.items()) if tags else (p.measurement, p.device_id)
    out = _series.get(key)
    return out if out is not None else _remember(_series, key, _series_key(p))


def _field_head(k: str) -> str:
    """``key=`` for a field key (cached)."""
    out = _heads.get(k)
    return out if out is not None else _remember(_heads, k, escape_key(k) + "=")


def encode_point_reference(p: Point) -> str:
    """:func:`encode_point` without its cache, field by field: the reference the fast path is held
    to (tests/test_lineprotocol_fastpath.py), and where it hands anything but plain numbers."""
    parts = []
    heads = _heads
    for k, v in p.fields.items():
        head = heads.get(k) or _field_head(k)
        t = type(v)
        if t is float:
            if v - v != 0.0:  # type: ignore[operator]
                raise Unencodable(f"field {k[:40]!r} is not finite")
            parts.append(head + repr(v))
        elif t is str:
            parts.append(head + escape_string(v))  # type: ignore[arg-type]
        elif t is bool:
            parts.append(head + ("true" if v else "false"))
        elif isinstance(v, int | float):  # ints and float subclasses are written as floats
            try:
                f = float(v)
            except OverflowError:  # an int beyond a float's range: refused, never raised into the writer
                raise Unencodable(f"field {k[:40]!r} is out of range") from None
            if not math.isfinite(f):
                raise Unencodable(f"field {k[:40]!r} is not finite")
            parts.append(head + repr(f))
        else:
            raise Unencodable(f"field {k[:40]!r} has unsupported type {t.__name__}")
    if not parts:
        raise Unencodable("no fields")
    return f"{series_key(p)} {','.join(parts)} {int(p.ts_ns)}"


class _FloatTexts:
    """Whether the float-text cache pays: a lookup that misses costs about half of a ``repr``
    saved by one that hits, so it is used while at least a third of the floats sampled from the
    last batch were in it."""

    useful = False


def _learn_floats(points: Sequence[Point]) -> None:
    """Learn the texts of the floats in a sample of ``points`` (about ``_SAMPLE`` of them): values
    that recur show up in it. The sample's hit rate before learning decides whether the next batch
    uses the cache; a full cache is emptied first when under half of the sample hit it (the
    readings moved on), and left as it is otherwise. Zero is never kept (``0.0 == -0.0`` would
    hand one the other's text), nor anything but a finite float."""
    sample = [
        v
        for p in itertools.islice(points, 0, None, max(1, len(points) // _SAMPLE))
        for v in p.fields.values()
        if type(v) is float and v - v == 0.0 and v
    ]
    if not sample:
        return
    reprs = _reprs
    hits = sum(v in reprs for v in sample)
    _FloatTexts.useful = hits * 3 >= len(sample)
    if len(reprs) + len(sample) > _REPRS_MAX:
        if hits * 2 >= len(sample):
            return
        reprs.clear()
    reprs.update(zip(sample, map(repr, sample), strict=True))


def _line(p: Point) -> str:
    """:func:`encode_point`: the reference's loop with a cache in front of ``repr``; any value but
    a finite float or an int goes to :func:`encode_point_reference` from the start."""
    parts = []
    heads = _heads
    reprs = _reprs
    for k, v in p.fields.items():
        head = heads.get(k) or _field_head(k)  # first, as in the reference: a bad key is the reason
        t = type(v)
        if t is float:
            text = reprs.get(v)  # type: ignore[arg-type]
            if text is None:
                if v - v != 0.0:  # type: ignore[operator]
                    return encode_point_reference(p)
                text = repr(v)
        elif t is int:  # ints are written as floats; one beyond a float's range: the reference refuses it
            if not -_INT_FLOAT_MAX <= v <= _INT_FLOAT_MAX:  # type: ignore[operator]
                return encode_point_reference(p)
            f = float(v)
            text = reprs.get(f) or repr(f)
        else:  # strings, bools, float subclasses, anything else
            return encode_point_reference(p)
        parts.append(head + text)
    if not parts:
        raise Unencodable("no fields")
    return f"{series_key(p)} {','.join(parts)} {int(p.ts_ns)}"


def encode_point(p: Point) -> str:
    """One line, no trailing newline. Raises :class:`Unencodable`.

    Gives exactly what :func:`encode_point_reference` gives (line, or refusal and its reason), with
    the text of finite floats cached: readings repeat (0.6, 230.0, 20.0...) and ``repr`` of a float
    is most of the cost of a line. :func:`encode_batch` fills the cache and decides whether it is
    worth a lookup (see :func:`_learn_floats`)."""
    return _line(p) if _FloatTexts.useful else encode_point_reference(p)


def encode_batch(points: Sequence[Point]) -> tuple[list[Point], list[str], list[tuple[Point, str]]]:
    """Encode a batch: (encodable points, their lines, [(point, reason)] for the rest)."""
    out = encode_each(points, _line if _FloatTexts.useful else encode_point_reference)
    _learn_floats(points)
    return out


def encode_each(
    points: Sequence[Point], line_of: Callable[[Point], str]
) -> tuple[list[Point], list[str], list[tuple[Point, str]]]:
    """:func:`encode_batch`'s loop with the given line encoder (``encode_point_reference``: the
    reference batch the cached path is held to), learning nothing."""
    ok: list[Point] = []
    lines: list[str] = []
    bad: list[tuple[Point, str]] = []
    for p in points:
        try:
            line = line_of(p)
        except Unencodable as e:
            bad.append((p, f"unencodable: {e}"))
            continue
        ok.append(p)
        lines.append(line)
    return ok, lines, bad


def encode(points: Sequence[Point]) -> bytes:
    """The request body for ``points`` (all must be encodable)."""
    return "\n".join(map(encode_point, points)).encode()
