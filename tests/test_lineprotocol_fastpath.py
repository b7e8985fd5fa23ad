"""The cached encoder (encode_point / encode_batch) against the per-field reference encoder:
the same line, or the same refusal with the same reason, or the same exception, for every input,
with the float-text cache cold and warm."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.model import Point
from ingest.stores import lineprotocol as lp
from ingest.stores.lineprotocol import Unencodable, encode_batch, encode_point, encode_point_reference


class SubFloat(float):
    """A float subclass: written as ``repr(float(v))``, like any number that is not exactly a float."""


class OddFloat(float):
    """A float subclass that converts to something else: the reference writes ``float(v)``."""

    def __float__(self) -> float:
        return 2.5

    def __repr__(self) -> str:
        return "odd"


class EqFloat(float):
    """Equal to, and hashing like, its float value (a value-keyed cache finds it), yet written as -7.0."""

    def __float__(self) -> float:
        return -7.0


def _outcome(fn: Any, *args: Any) -> tuple[str, str]:
    try:
        return ("line", repr(fn(*args)))
    except Unencodable as e:
        return ("refused", str(e))
    except Exception as e:  # what the reference does with e.g. an int beyond float range
        return (type(e).__name__, str(e))


def _reference_batch(points: list[Point]) -> Any:
    ok: list[int] = []
    lines: list[str] = []
    bad: list[tuple[int, str]] = []
    for p in points:
        try:
            line = encode_point_reference(p)
        except Unencodable as e:
            bad.append((id(p), f"unencodable: {e}"))
            continue
        ok.append(id(p))
        lines.append(line)
    return ok, lines, bad


def _batch(points: list[Point]) -> Any:
    ok, lines, bad = encode_batch(points)
    return [id(p) for p in ok], lines, [(id(p), r) for p, r in bad]


_SPECIAL = ["", " ", ",", "=", '"', "\\", "\n", "\r", "\t", "#", "%", "%s", "%r", "%%", "é", "\ud800", "\x00", "\x7f"]
_text = st.one_of(
    st.text(max_size=6),
    st.lists(st.sampled_from([*_SPECIAL, "a", "b", "ENERGY.Total"]), max_size=4).map("".join),
)
_keys = st.one_of(st.sampled_from(["a", "b", "c", "x y", "k=1,", "%d", "ENERGY.Power"]), _text)
_floats = st.one_of(
    st.floats(),  # NaN, infinities, -0.0, subnormals, huge
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.1, 0.6, 230.0, 1e16, 1e308, -1e308, 5e-324, float("nan"), float("inf")]),
)
_values = st.one_of(
    _floats,
    _floats,
    st.integers(),
    st.sampled_from([0, 1, -1, 2**53 + 1, 10**16, 10**308, 10**309, -(10**400), True, False]),
    st.booleans(),
    _text,
    _floats.map(SubFloat),
    _floats.map(OddFloat),
    _floats.map(EqFloat),
    st.sampled_from([Decimal("1.0"), Decimal("0.5"), None, [1.0], complex(1, 0)]),
)
_fields = st.dictionaries(_keys, _values, max_size=9)
_tags = st.dictionaries(
    st.sampled_from(["site", "unit", "device_id", "t k"]) | _text, st.sampled_from(["", "hall 1", "a,b"]) | _text
)
_point = st.builds(
    Point,
    measurement=st.sampled_from(["sensor_readings", "m x,y", "#c", "", "m\\"]) | _text,
    device_id=st.sampled_from(["plug1", "dev 2", "", "a=b"]) | _text,
    fields=_fields,
    ts_ns=st.integers(min_value=0, max_value=2**63),
    tags=_tags,
)


def _same_keys_other_types(fields: dict[str, Any]) -> list[dict[str, Any]]:
    """The same key set with its values turned into other types (one batch must not mix them up)."""
    swaps: list[Callable[[Any], Any]] = [float, int, bool, str, SubFloat, lambda v: -v, lambda v: v * 1e300]
    out = []
    for swap in swaps:
        new: dict[str, Any] = {}
        for k, v in fields.items():
            try:
                new[k] = swap(v)
            except Exception:
                new[k] = v
        out.append(new)
    return out


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(points=st.lists(_point, max_size=12), cold=st.booleans())
def test_fast_path_matches_reference(points: list[Point], cold: bool) -> None:
    if cold:
        lp._reprs.clear()
    for p in points:
        assert _outcome(lp._line, p) == _outcome(encode_point_reference, p), p
    # twice: the first batch teaches the cache these floats, the second reads them from it
    for _ in range(2):
        lp._FloatTexts.useful = True  # whatever the last sample said: the cached path is the one on trial
        assert _outcome(_batch, points) == _outcome(_reference_batch, points)
        for p in points:
            assert _outcome(lp._line, p) == _outcome(encode_point_reference, p), p
            assert _outcome(encode_point, p) == _outcome(encode_point_reference, p), p


@settings(max_examples=200, deadline=None)
@given(fields=st.dictionaries(_keys, _floats | st.integers(-(2**60), 2**60), min_size=1, max_size=9))
def test_same_keys_with_other_types_in_one_batch(fields: dict[str, Any]) -> None:
    points = [Point("m", "d", f, i) for i, f in enumerate([fields, *_same_keys_other_types(fields), fields])]
    for _ in range(2):
        lp._FloatTexts.useful = True
        assert _outcome(_batch, points) == _outcome(_reference_batch, points)


def test_signed_zero_and_bool_never_borrow_a_cached_text() -> None:
    points = [Point("m", "d", {"a": v, "b": 1.0}, 1) for v in (0.0, -0.0, 1.0, True, 1, False, 0, -0.0)]
    for _ in range(3):  # the cache learns after each batch
        lp._FloatTexts.useful = True
        _, lines, _ = encode_batch(points)
        assert [line.split(" ")[1] for line in lines] == [
            "a=0.0,b=1.0",
            "a=-0.0,b=1.0",
            "a=1.0,b=1.0",
            "a=true,b=1.0",
            "a=1.0,b=1.0",
            "a=false,b=1.0",
            "a=0.0,b=1.0",
            "a=-0.0,b=1.0",
        ]


def test_a_bad_key_is_the_reason_even_before_an_int_beyond_float_range() -> None:
    cases: list[dict[str, Any]] = [
        {"": 10**400},
        {"a\nb": 10**309},
        {"ok": 1.0, "x\\y": -(10**400)},
        {"ok": 10**400, "": 1.0},
    ]
    for fields in cases:
        p = Point("m", "d", fields, 1)
        assert _outcome(lp._line, p) == _outcome(encode_point_reference, p)
        lp._FloatTexts.useful = True
        assert _outcome(_batch, [p]) == _outcome(_reference_batch, [p])


def test_a_full_cache_that_misses_is_emptied_and_a_useful_one_kept() -> None:
    lp._reprs.clear()
    lp._reprs.update({1000.0 + i: repr(1000.0 + i) for i in range(lp._REPRS_MAX)})  # full
    encode_batch([Point("m", "d", {"v": 1000.0 + i}, i) for i in range(500)])  # the sample hits: kept
    assert len(lp._reprs) == lp._REPRS_MAX
    assert lp._FloatTexts.useful
    new = [Point("m", "d", {"v": 0.5 + i}, i) for i in range(100)]
    encode_batch(new)  # every sampled value misses: emptied, then learns the sample; not worth a lookup
    assert 0 < len(lp._reprs) <= 100 and 0.5 in lp._reprs
    assert not lp._FloatTexts.useful
    encode_batch(new)  # now they recur
    assert lp._FloatTexts.useful
