"""The contract JSON object's fast paths held to their references (property tests): the fields of
known names and finite numbers only, checked in C-level passes (``_own_fields``), must be what the
per-field reference check gives (``_checked_fields``: the same dict, or the same refusal); an integer
``ts`` in milliseconds, read without ``to_ns``, must be the time (or refusal) ``to_ns`` gives."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from core.model import Kind, Rejected
from ingest.decoding import decode
from ingest.decoding.codecs import Source
from ingest.decoding.decode import JsonObject, _checked_fields, _own_fields, _ts_value

NOW_NS = 1_764_038_400_000_000_000
LATEST_NS = NOW_NS + 300 * 10**9
SOURCE = Source("dev-1", Kind.TELEMETRY, "sensor_readings")
NUMBERS = st.one_of(
    st.integers(-(2**70), 2**70),
    st.integers(-(2**1100), 2**1100),
    st.floats(),
    st.sampled_from([1e308, -1e308, 0.0, -0.0, float("inf"), float("-inf"), float("nan")]),
)
VALUES = st.one_of(NUMBERS, NUMBERS, st.booleans(), st.none(), st.text(max_size=3), st.lists(st.integers(), max_size=1))
NAMES = st.sampled_from(["temperature", "ENERGY.Power", "a", "bad name", "site", "time", "x" * 300, "é"])


def outcome(fn: Any, obj: dict[str, Any]) -> Any:
    try:
        return fn(obj)
    except Rejected as r:
        return (r.reason, r.detail)


@settings(max_examples=2000, deadline=None)
@given(obj=st.dictionaries(NAMES, VALUES, max_size=6), known=st.booleans())
def test_fields_are_the_reference_check(obj: dict[str, Any], known: bool) -> None:
    decode._good_keys.clear()
    if known:  # every name checked before (the steady state): the fast check may take it
        for k in obj:
            outcome(_checked_fields, {k: 1.0})
    want = outcome(_checked_fields, dict(obj))
    got = outcome(lambda o: _own_fields(o, 256), dict(obj))
    assert got == want
    if type(want) is dict:
        assert [type(v) for v in got.values()] == [type(v) for v in want.values()]


def test_the_fast_check_is_taken() -> None:
    """Without this the property above could hold with the fast check never taken."""
    decode._good_keys.clear()
    obj = {"a": 1, "b": 2.5}
    assert _checked_fields(dict(obj)) == {"a": 1.0, "b": 2.5}
    assert _own_fields(obj, 256) is not obj  # a new dict: the fast check's


MS = st.integers(100_000_000_000, 100_000_000_000_000 - 1)


@settings(max_examples=1000, deadline=None)
@given(
    ts=st.one_of(
        MS,
        st.integers(LATEST_NS // 10**6 - 3, LATEST_NS // 10**6 + 3),
        st.integers(-5, 2**64),
        st.sampled_from([10**11 - 1, 10**11, 10**14 - 1, 10**14]),
    )
)
def test_an_integer_ts_is_read_as_to_ns_reads_it(ts: int) -> None:
    try:
        want: Any = _ts_value(ts, NOW_NS, LATEST_NS)
    except Rejected as r:
        want = (r.reason, r.detail)
    try:
        got: Any = JsonObject().decode(SOURCE, b'{"ts": %d, "t": 1}' % ts, NOW_NS, LATEST_NS)[0].ts_ns
    except Rejected as r:
        got = (r.reason, r.detail)
    assert got == want
