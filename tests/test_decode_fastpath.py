"""The contract JSON object's fast path for its time held to the reference (property test): an
integer ``ts`` in milliseconds, read without ``to_ns``, must be the time (or the refusal) that
``to_ns`` and the future check give."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from core.model import Kind, Rejected
from ingest.decoding.codecs import Source
from ingest.decoding.decode import JsonObject, _ts_value

NOW_NS = 1_764_038_400_000_000_000
LATEST_NS = NOW_NS + 300 * 10**9
SOURCE = Source("dev-1", Kind.TELEMETRY, "sensor_readings")
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
