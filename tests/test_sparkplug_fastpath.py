"""The fast path of Sparkplug data messages (ingest/decoding/sparkplug/plan.py) is held to the general
path: for any birth table and any data message, the same points and fields, the same dead letter
(reason and detail) and the same rebirth requests; and the common case does take it."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from core.model import MEASUREMENTS, Kind, Point, Rejected
from core.sparkplug import BirthRecord, MetricInfo
from ingest.decoding.codecs import Source
from ingest.decoding.sparkplug.codec import SparkplugCodec
from ingest.decoding.sparkplug.plan import DataPlan
from ingest.decoding.sparkplug.proto import DataType as T
from ingest.decoding.sparkplug.proto import payload_class
from ingest.decoding.sparkplug.state import MemoryState, NoRebirths
from ingest.decoding.sparkplug.topic import SparkplugTopic, parse

NOW_NS = 1_764_038_400_000_000_000
NOW_MS = NOW_NS // 1_000_000
LATEST_NS = NOW_NS + 300 * 1_000_000_000


def _ddata_topic() -> SparkplugTopic:
    topic = parse("spBv1.0/g/DDATA/e/d")
    assert topic is not None
    return topic


TOPIC = _ddata_topic()
MAX_FIELDS = 5
SOURCE = Source(TOPIC.device_id, Kind.TELEMETRY, MEASUREMENTS[Kind.TELEMETRY], MAX_FIELDS)
ONEOFS = ("int_value", "long_value", "float_value", "double_value", "boolean_value", "string_value", "bytes_value")

u32 = st.one_of(
    st.sampled_from([0, 1, 0x7F, 0x80, 0xFF, 0x8000, 0xFFFF, 0x8000_0000, 0xFFFF_FFFF]), st.integers(0, 2**32 - 1)
)
u64 = st.one_of(
    st.sampled_from([0, 1, 0xFF, 0xFFFF_FFFF, 2**32, 2**63, 2**64 - 1, 2**64 - 2]), st.integers(0, 2**64 - 1)
)
texts = st.one_of(
    st.sampled_from(["", "ok", "°C", "a\nb", "\x00", "\x85", "a\u2028b", "\u202e", "\u00a0", "\ufffe", "tab\t"]),
    st.text(max_size=8),
)
values = st.one_of(
    st.none(),
    st.tuples(st.just("int_value"), u32),
    st.tuples(st.just("long_value"), u64),
    st.tuples(st.just("float_value"), st.floats(width=32)),
    st.tuples(st.just("double_value"), st.one_of(st.sampled_from([0.0, -0.0]), st.floats())),
    st.tuples(st.just("boolean_value"), st.booleans()),
    st.tuples(st.just("string_value"), texts),
    st.tuples(st.just("bytes_value"), st.binary(max_size=4)),
)
datatypes = st.one_of(st.sampled_from(list(T)), st.integers(0, 40))
scalar_types = st.sampled_from([t for t in T if t <= T.UUID and t != T.UNKNOWN])
timestamps = st.sampled_from([None, 0, NOW_MS, NOW_MS - 1, NOW_MS + 3_600_000])


@st.composite
def births(draw: Any) -> BirthRecord | None:
    """A birth table (or none): metric i is field ``f{i}`` named ``m{i}``, with alias i or none."""
    if draw(st.integers(0, 9)) == 0:
        return None
    aliases: dict[int, MetricInfo] = {}
    names: dict[str, MetricInfo] = {}
    for i in range(draw(st.integers(0, 7))):
        info = MetricInfo(f"f{i}", draw(st.one_of(scalar_types, datatypes)))
        names[f"m{i}"] = info
        if draw(st.booleans()) or i == 0:
            aliases[i] = info  # alias 0 is an alias too
    return BirthRecord(aliases, names)


def matching(datatype: int) -> Any:
    """A value in the field the datatype reads, mostly in range, finite, printable (the fast path's
    case), else any value."""
    small = st.integers(0, 127)
    if datatype in (T.INT8, T.INT16, T.INT32, T.UINT8, T.UINT16, T.UINT32):
        return st.tuples(st.just("int_value"), st.one_of(small, u32))
    if datatype in (T.INT64, T.UINT64, T.DATETIME):
        return st.tuples(st.just("long_value"), st.one_of(small, u64))
    finite = st.floats(allow_nan=False, allow_infinity=False)
    if datatype == T.FLOAT:
        return st.tuples(st.just("float_value"), st.one_of(st.floats(width=32, allow_nan=False), st.floats(width=32)))
    if datatype == T.DOUBLE:
        return st.tuples(st.just("double_value"), st.one_of(finite, st.floats()))
    if datatype == T.BOOLEAN:
        return st.tuples(st.just("boolean_value"), st.booleans())
    if datatype in (T.STRING, T.TEXT, T.UUID):
        return st.tuples(st.just("string_value"), st.one_of(st.text("ab c°", max_size=4), texts))
    return values


@st.composite
def data_messages(draw: Any, record: BirthRecord | None) -> bytes:
    p = payload_class()()
    ts = draw(timestamps)
    if ts is not None:
        p.timestamp = ts
    p.seq = 3
    born = sorted(record.names) if record is not None else []
    clean = draw(st.booleans())  # mostly the fast path's case: anomalies rarer
    for _ in range(draw(st.integers(0, 4 if clean else 7))):
        m = p.metrics.add()
        if clean and born:
            name = draw(st.sampled_from(born))
            info = record.names[name]  # type: ignore[union-attr]
            alias = next((a for a, i in record.aliases.items() if i is info), None)  # type: ignore[union-attr]
            if alias is None or draw(st.integers(0, 3)) == 0:
                m.name = name
            else:
                m.alias = alias
            value = draw(matching(info.datatype))
            if value is not None:
                setattr(m, *value)
            if draw(st.integers(0, 2)) == 0:
                m.timestamp = p.timestamp
            continue
        how = draw(st.sampled_from(["alias", "alias", "alias", "name", "both", "neither"]))
        name = draw(st.sampled_from([*born, "zz"])) if born else "zz"
        if how in ("alias", "both"):
            m.alias = int(name[1:]) if name != "zz" and draw(st.booleans()) else draw(st.integers(0, 9))
        if how in ("name", "both"):
            m.name = name
        info = record.names.get(name) if record is not None else None
        value = draw(st.one_of(matching(info.datatype), values) if info is not None else values)
        if value is not None:
            setattr(m, *value)
        if draw(st.integers(0, 3)) == 0:
            m.datatype = draw(datatypes)
        if draw(st.integers(0, 3)) == 0:
            t = draw(timestamps)
            if t is not None:
                m.timestamp = t
        if draw(st.integers(0, 7)) == 0:
            m.is_null = True
        if draw(st.integers(0, 7)) == 0:
            m.is_historical = True
    return bytes(p.SerializeToString())


def outcome(codec: SparkplugCodec, payload: bytes) -> object:
    try:
        return repr(codec.decode(SOURCE, payload, NOW_NS, LATEST_NS))  # repr: -0.0 and NaN as they are
    except Rejected as r:
        return (r.reason, r.detail)


def codecs(record: BirthRecord | None) -> tuple[SparkplugCodec, NoRebirths, SparkplugCodec, NoRebirths]:
    state = MemoryState()
    if record is not None:
        state.born(TOPIC.node_id, TOPIC.device_id, record, 1.0)
    fast, general = NoRebirths(), NoRebirths()
    return (
        SparkplugCodec(TOPIC, state, fast),
        fast,
        SparkplugCodec(TOPIC, state, general, fast_path=False),
        general,
    )


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_the_fast_path_decodes_as_the_general_path(data: Any) -> None:
    record = data.draw(births())
    fast, fast_rebirths, general, general_rebirths = codecs(record)
    for _ in range(2):  # the second message reuses the compiled plan
        payload = data.draw(data_messages(record))
        if record is not None:
            msg = payload_class().FromString(payload)
            taken = DataPlan(record).fields(msg.metrics, msg.timestamp, MAX_FIELDS) is not None
            event("fast path" if taken else "general path")
        assert outcome(fast, payload) == outcome(general, payload)
        assert fast_rebirths.requested == general_rebirths.requested


def message(metrics: list[dict[str, Any]], ts: int | None = NOW_MS) -> Any:
    p = payload_class()()
    if ts is not None:
        p.timestamp = ts
    for kw in metrics:
        p.metrics.add(**kw)
    return p


@pytest.mark.parametrize(
    ("datatype", "value", "stored"),
    [
        (T.DOUBLE, {"double_value": -2.5}, -2.5),
        (T.DOUBLE, {"float_value": 1.5}, 1.5),
        (T.FLOAT, {"float_value": 0.0}, 0.0),
        (T.INT8, {"int_value": 0xFF}, -1.0),
        (T.INT16, {"long_value": 2**64 - 2}, -2.0),
        (T.INT64, {"long_value": 2**63}, float(-(2**63))),
        (T.UINT32, {"long_value": 0xFFFF_FFFF}, float(0xFFFF_FFFF)),
        (T.UINT8, {"int_value": 0}, 0.0),
        (T.BOOLEAN, {"boolean_value": False}, False),
        (T.STRING, {"string_value": "°C"}, "°C"),
        (T.TEXT, {"string_value": ""}, ""),
        (T.DATETIME, {"long_value": NOW_MS}, float(NOW_MS)),
    ],
)
def test_the_common_case_takes_the_fast_path(datatype: T, value: dict[str, Any], stored: object) -> None:
    record = BirthRecord({7: MetricInfo("x", datatype)}, {"X": MetricInfo("x", datatype)})
    msg = message([{"alias": 7, **value}, {"name": "X", "timestamp": NOW_MS, **value}])
    assert DataPlan(record).fields(msg.metrics, msg.timestamp, MAX_FIELDS) == {"x": stored}
    fast, _, general, _ = codecs(record)
    payload = msg.SerializeToString()
    assert outcome(fast, payload) == outcome(general, payload)


@pytest.mark.parametrize(
    "metric",
    [
        {"alias": 8, "double_value": 1.0},  # not born
        {"alias": 7, "is_null": True},
        {"alias": 7, "double_value": 1.0, "is_historical": True},
        {"alias": 7, "double_value": 1.0, "timestamp": NOW_MS - 1},
        {"alias": 7, "double_value": float("nan")},
        {"alias": 7, "string_value": "1.0"},
        {"alias": 7},  # no value
    ],
)
def test_anything_else_is_left_to_the_general_path(metric: dict[str, Any]) -> None:
    record = BirthRecord({7: MetricInfo("x", T.DOUBLE)}, {})
    msg = message([{"alias": 7, "double_value": 2.0}, metric])
    assert DataPlan(record).fields(msg.metrics, msg.timestamp, MAX_FIELDS) is None


def test_a_rebirth_recompiles_the_plan() -> None:
    """Aliases reassigned by a rebirth name the next data message, not the plan of the old birth."""
    state, rebirths = MemoryState(), NoRebirths()
    codec = SparkplugCodec(TOPIC, state, rebirths)
    payload = message([{"alias": 1, "double_value": 2.0}]).SerializeToString()
    state.born(TOPIC.node_id, TOPIC.device_id, BirthRecord({1: MetricInfo("a", T.DOUBLE)}, {}), 1.0)
    assert codec.decode(SOURCE, payload, NOW_NS, LATEST_NS) == [
        Point(SOURCE.measurement, SOURCE.device_id, {"a": 2.0}, NOW_NS, {})
    ]
    state.born(TOPIC.node_id, TOPIC.device_id, BirthRecord({1: MetricInfo("b", T.INT8)}, {}), 2.0)
    with pytest.raises(Rejected):  # an Int8 has no double value: the general path says so
        codec.decode(SOURCE, payload, NOW_NS, LATEST_NS)
    state.born(TOPIC.node_id, TOPIC.device_id, BirthRecord({1: MetricInfo("c", T.DOUBLE)}, {}), 3.0)
    assert codec.decode(SOURCE, payload, NOW_NS, LATEST_NS) == [
        Point(SOURCE.measurement, SOURCE.device_id, {"c": 2.0}, NOW_NS, {})
    ]
    assert rebirths.requested == []
