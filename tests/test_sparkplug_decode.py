"""Sparkplug B decoding to spec: every scalar datatype, nulls, timestamps, historical, aliases,
births and deaths, unsupported types and names (ingest/decoding/sparkplug)."""

from __future__ import annotations

import pytest

from core.model import Bundle, Decoded, FieldValue, Point, Reason, Rejected, StatusChange
from ingest.decoding.decode import Decoder
from ingest.decoding.sparkplug import sparkplug_rules
from ingest.decoding.sparkplug.encode import MetricValue, encode
from ingest.decoding.sparkplug.proto import DataType as T
from ingest.decoding.sparkplug.proto import payload_class
from ingest.decoding.sparkplug.state import MemoryState, NoRebirths
from ingest.decoding.topics import ContractTopics, Topics

NOW_NS = 1_764_038_400_000_000_000
NOW_MS = NOW_NS // 1_000_000
NB, ND, NDD = "spBv1.0/plant1/NBIRTH/edge1", "spBv1.0/plant1/NDATA/edge1", "spBv1.0/plant1/NDEATH/edge1"
DB, DD, DDD = "spBv1.0/plant1/DBIRTH/edge1/pump", "spBv1.0/plant1/DDATA/edge1/pump", "spBv1.0/plant1/DDEATH/edge1/pump"
SCALARS: list[tuple[T, float | int | bool | str, FieldValue]] = [  # (datatype, value sent, value stored)
    (T.INT8, -5, -5.0),
    (T.INT16, -300, -300.0),
    (T.INT32, -70000, -70000.0),
    (T.INT64, -(2**40), float(-(2**40))),
    (T.UINT8, 250, 250.0),
    (T.UINT16, 65000, 65000.0),
    (T.UINT32, 4_000_000_000, 4e9),
    (T.UINT64, 2**40, float(2**40)),
    (T.FLOAT, 1.5, 1.5),
    (T.DOUBLE, -2.25, -2.25),
    (T.BOOLEAN, True, True),
    (T.STRING, "ok", "ok"),
    (T.TEXT, "long text", "long text"),
    (T.DATETIME, NOW_MS - 5, float(NOW_MS - 5)),
]


def make() -> tuple[Decoder, MemoryState, NoRebirths]:
    state, rebirths = MemoryState(), NoRebirths()
    topics = Topics([ContractTopics(), *sparkplug_rules(state, rebirths)])
    return Decoder(topics=topics), state, rebirths


def birth_metrics() -> list[MetricValue]:
    return [
        MetricValue(t, v, name=f"Folder/m{i} x", alias=i + 1, timestamp_ms=NOW_MS)
        for i, (t, v, _) in enumerate(SCALARS)
    ]


def decode(d: Decoder, topic: str, payload: bytes) -> Decoded:
    return d.decode(topic, payload, NOW_NS)


def test_every_scalar_datatype_through_birth_and_alias_only_data() -> None:
    d, _, rebirths = make()
    nb = decode(d, NB, encode([MetricValue(T.INT64, 7, name="bdSeq")], seq=0, timestamp_ms=NOW_MS))
    assert isinstance(nb, Bundle) and nb.status == [StatusChange("plant1:edge1", True, NOW_NS / 1e9)]
    born = decode(d, DB, encode(birth_metrics(), seq=1, timestamp_ms=NOW_MS))
    assert isinstance(born, Bundle)
    assert born.status == [StatusChange("plant1:edge1:pump", True, NOW_NS / 1e9)]
    [bp] = born.points
    expected = {f"Folder.m{i}_x": stored for i, (_, _, stored) in enumerate(SCALARS)}
    assert bp.fields == expected and bp.device_id == "plant1:edge1:pump"
    data = [MetricValue(t, v, alias=i + 1) for i, (t, v, _) in enumerate(SCALARS)]  # no names, no datatypes
    payload = payload_class().FromString(encode(data, seq=2, timestamp_ms=NOW_MS - 1000))
    for m in payload.metrics:
        m.ClearField("datatype")  # tahu #275: data messages may omit datatypes; the birth's hold
    got = decode(d, DD, payload.SerializeToString())
    assert got == [Point("sensor_readings", "plant1:edge1:pump", expected, NOW_NS - 1_000_000_000, {})]
    assert rebirths.requested == []


@pytest.mark.parametrize(
    ("datatype", "field", "raw", "stored"),
    [
        (T.INT8, "int_value", 0xFFFFFFFF, -1.0),  # sign-extended to 32 bits (tahu #71, sparkplug #542)
        (T.INT8, "int_value", 0xFF, -1.0),  # the type's own width (Tahu's encoder)
        (T.INT16, "long_value", 2**64 - 2, -2.0),  # a signed value in long_value
        (T.INT32, "int_value", 2**31, float(-(2**31))),
        (T.UINT32, "long_value", 4_294_967_295, 4_294_967_295.0),  # sparkplug #102
        (T.UINT32, "int_value", 4_294_967_295, 4_294_967_295.0),
        (T.INT64, "long_value", 2**64 - 1, -1.0),
    ],
)
def test_integer_reinterpretation(datatype: T, field: str, raw: int, stored: float) -> None:
    d, _, _ = make()
    decode(d, NB, encode([MetricValue(datatype, 0, name="v", alias=1)]))
    p = payload_class()()
    m = p.metrics.add()
    m.alias = 1
    setattr(m, field, raw)
    got = decode(d, ND, p.SerializeToString())
    assert isinstance(got, list) and got[0].fields == {"v": stored}


def test_out_of_range_unsigned_is_refused() -> None:
    d, _, _ = make()
    decode(d, NB, encode([MetricValue(T.UINT8, 0, name="v", alias=1)]))
    p = payload_class()()
    p.metrics.add(alias=1, int_value=256)
    with pytest.raises(Rejected) as e:
        decode(d, ND, p.SerializeToString())
    assert e.value.reason is Reason.WRONG_TYPE


def test_nulls_timestamps_and_historical() -> None:
    d, _, _ = make()
    decode(
        d, NB, encode([MetricValue(T.DOUBLE, 0.0, name="a", alias=1), MetricValue(T.DOUBLE, 0.0, name="b", alias=2)])
    )
    got = decode(
        d,
        ND,
        encode(
            [
                MetricValue(T.DOUBLE, 1.0, alias=1, timestamp_ms=NOW_MS - 10),
                MetricValue(T.DOUBLE, None, alias=2),  # is_null: absent
                MetricValue(T.DOUBLE, 3.0, alias=1, timestamp_ms=NOW_MS - 99_000, historical=True),
            ],
            timestamp_ms=NOW_MS,
        ),
    )
    assert isinstance(got, list)
    assert sorted((p.ts_ns, p.fields, p.tags) for p in got) == [
        (NOW_NS - 99_000_000_000, {"a": 3.0}, {"historical": "true"}),
        (NOW_NS - 10_000_000, {"a": 1.0}, {}),
    ]
    only_null = decode(d, ND, encode([MetricValue(T.DOUBLE, None, alias=2)]))
    assert only_null == Bundle([], [])


def test_unknown_alias_is_dead_lettered_with_a_rebirth_request() -> None:
    d, _, rebirths = make()
    with pytest.raises(Rejected) as e:
        decode(d, DD, encode([MetricValue(T.DOUBLE, 1.0, alias=9)]))
    assert e.value.reason is Reason.UNKNOWN_ALIAS and "no birth" in e.value.detail
    decode(d, NB, encode([MetricValue(T.DOUBLE, 1.0, name="a", alias=1)]))
    with pytest.raises(Rejected) as e:
        decode(d, ND, encode([MetricValue(T.DOUBLE, 1.0, alias=1), MetricValue(T.DOUBLE, 1.0, alias=2)]))
    assert e.value.reason is Reason.UNKNOWN_ALIAS
    assert rebirths.requested == [("plant1", "edge1"), ("plant1", "edge1")]


def test_a_node_birth_forgets_the_devices_births() -> None:
    d, _, _ = make()
    decode(d, NB, encode([]))
    decode(d, DB, encode([MetricValue(T.DOUBLE, 1.0, name="a", alias=1)]))
    decode(d, NB, encode([]))  # a new session: devices must be born again
    with pytest.raises(Rejected) as e:
        decode(d, DD, encode([MetricValue(T.DOUBLE, 1.0, alias=1)]))
    assert e.value.reason is Reason.UNKNOWN_ALIAS


@pytest.mark.parametrize(
    ("datatype", "reason"),
    [
        (T.BYTES, "Bytes"),
        (T.FILE, "File"),
        (T.DATASET, "DataSet"),
        (T.TEMPLATE, "Template"),
        (T.INT8_ARRAY, "Int8Array"),
    ],
)
def test_unstored_types_are_dead_lettered_in_data_and_skipped_in_births(datatype: T, reason: str) -> None:
    d, _, _ = make()
    p = payload_class()()
    p.metrics.add(name="blob", alias=1, datatype=int(datatype), bytes_value=b"\x01\x02")
    p.metrics.add(name="t", alias=2, datatype=int(T.DOUBLE), double_value=1.0)
    born = decode(d, NB, p.SerializeToString())
    assert isinstance(born, Bundle) and [pt.fields for pt in born.points] == [{"t": 1.0}]
    q = payload_class()()
    q.metrics.add(alias=1, bytes_value=b"\x01")
    with pytest.raises(Rejected) as e:
        decode(d, ND, q.SerializeToString())
    assert e.value.reason is Reason.WRONG_TYPE and datatype.name in e.value.detail


@pytest.mark.parametrize(
    ("names", "reason"),
    [
        (["_x"], Reason.INVALID_NAME),
        (["a b", "a_b"], Reason.INVALID_NAME),  # two names, one field
        (["site"], Reason.RESERVED_NAME),
        (["historical"], Reason.RESERVED_NAME),
        (["x" * 200], Reason.INVALID_NAME),
    ],
)
def test_birth_names_must_make_fields(names: list[str], reason: Reason) -> None:
    d, state, _ = make()
    metrics = [MetricValue(T.DOUBLE, 1.0, name=n, alias=i) for i, n in enumerate(names)]
    with pytest.raises(Rejected) as e:
        decode(d, NB, encode(metrics))
    assert e.value.reason is reason
    assert state.birth("plant1:edge1", None) is None  # nothing remembered of a refused birth


def test_node_death_with_the_births_bdseq_takes_the_devices_offline_and_a_stale_one_does_not() -> None:
    d, _, _ = make()
    decode(d, NB, encode([MetricValue(T.INT64, 3, name="bdSeq")]))
    decode(d, DB, encode([MetricValue(T.DOUBLE, 1.0, name="a", alias=1)]))
    stale = decode(d, NDD, encode([MetricValue(T.INT64, 2, name="bdSeq")]))
    assert stale == Bundle([], [])
    dead = decode(d, NDD, encode([MetricValue(T.INT64, 3, name="bdSeq")]))
    at = NOW_NS / 1e9
    assert dead == Bundle([], [StatusChange("plant1:edge1", False, at), StatusChange("plant1:edge1:pump", False, at)])
    assert decode(d, DDD, encode([], seq=5)) == Bundle([], [StatusChange("plant1:edge1:pump", False, at)])


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("spBv1.0/plant1/NBIRTH", Reason.BAD_TOPIC),
        ("spBv1.0/plant1/NBIRTH/edge1/dev", Reason.BAD_TOPIC),
        ("spBv1.0/plant1/DDATA/edge1", Reason.BAD_TOPIC),
        ("spBv1.0/plant1/XDATA/edge1", Reason.UNKNOWN_KIND),
        ("spBv1.0/plant1/NCMD/edge1", Reason.UNKNOWN_KIND),
        ("spBv1.0/pl:ant/NDATA/edge1", Reason.BAD_TOPIC),  # ':' separates: never inside a part
        ("spBv1.0/plänt/NDATA/edge1", Reason.BAD_TOPIC),
        ("spBv1.0/" + "g" * 40 + "/DDATA/" + "e" * 20 + "/d" * 1 + "x" * 10, Reason.BAD_TOPIC),
    ],
)
def test_bad_topics(topic: str, reason: Reason) -> None:
    d, _, _ = make()
    with pytest.raises(Rejected) as e:
        decode(d, topic, encode([]))
    assert e.value.reason is reason


def test_garbage_and_future_timestamps() -> None:
    d, _, _ = make()
    with pytest.raises(Rejected) as e:
        decode(d, NB, b"\xff\xff\xff")
    assert e.value.reason is Reason.WRONG_TYPE
    decode(d, NB, encode([MetricValue(T.DOUBLE, 1.0, name="a", alias=1)]))
    with pytest.raises(Rejected) as e:
        decode(d, ND, encode([MetricValue(T.DOUBLE, 1.0, alias=1, timestamp_ms=NOW_MS + 3_600_000)]))
    assert e.value.reason is Reason.FUTURE_TIMESTAMP


def test_gateway_and_device_of() -> None:
    d, _, _ = make()
    assert d.topics.device_of(DD) == "plant1:edge1:pump" and d.topics.gateway_of(DD) == "plant1:edge1"
    assert d.topics.device_of(ND) == "plant1:edge1" and d.topics.gateway_of(ND) == "plant1:edge1"
    assert d.topics.device_of("devices/d1/telemetry") == "d1" and d.topics.gateway_of("devices/d1/telemetry") is None


def test_a_metric_timestamp_of_0_is_none_the_message_timestamp_applies() -> None:
    d, _, _ = make()
    decode(
        d, NB, encode([MetricValue(T.DOUBLE, 0.0, name="a", alias=1), MetricValue(T.DOUBLE, 0.0, name="b", alias=2)])
    )
    sent = [MetricValue(T.DOUBLE, 1.0, alias=1, timestamp_ms=0), MetricValue(T.DOUBLE, 2.0, alias=2)]
    got = decode(d, ND, encode(sent, timestamp_ms=NOW_MS - 1000))
    assert got == [Point("sensor_readings", "plant1:edge1", {"a": 1.0, "b": 2.0}, NOW_NS - 1_000_000_000, {})]
