"""Property tests: for any topic and any bytes the decoder returns a well-formed value of the
right type or raises Rejected -- nothing else escapes, even without the last-resort guard."""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from core.devicetext import UNSAFE
from core.model import (
    COLLECTIONS,
    MEASUREMENTS,
    Document,
    Kind,
    Point,
    Rejected,
    StatusChange,
)
from ingest.decoding.decode import Decoder
from ingest.decoding.names import FIELD_KEY, RESERVED_FIELDS, TAG_VALUE, has_control

NOW_NS = 1_764_038_400_000_000_000
WINDOW_S = 300.0
dec = Decoder(future_window_s=WINDOW_S)
FUZZ = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

DEVICE_CHARS = "abcXYZ019_.:-"
KIND_NAMES = [k.value for k in Kind]

device_ids = st.one_of(
    st.text(DEVICE_CHARS, min_size=1, max_size=8),
    st.text(DEVICE_CHARS, min_size=60, max_size=70),
    st.text(max_size=10),
)
kinds = st.one_of(st.sampled_from(KIND_NAMES), st.text(max_size=12))
topics = st.one_of(
    st.sampled_from([f"devices/dev-1/{k}" for k in KIND_NAMES]),
    st.builds(lambda d, k: f"devices/{d}/{k}", device_ids, kinds),
    st.text(max_size=40),
    st.builds(lambda d, k: f"devices/{d}/{k}/x", device_ids, kinds),
)
good_topics = st.sampled_from([f"devices/dev-1/{k}" for k in KIND_NAMES])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),  # includes NaN / Infinity, which json.dumps writes as bare literals
    st.text(max_size=12),
    st.sampled_from(["online", "OFFLINE", "info", "critical", "2025-11-25T02:40:00Z", "aGkgCg"]),
    st.sampled_from([1764038400, 1764038400123, 1764038400123456, NOW_NS, -5, 2**28, 10**20]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=20,
)
LABELS = ["bn", "bt", "bu", "bv", "bs", "bver", "n", "u", "v", "vs", "vb", "vd", "s", "t", "ut"]
KEYS = [*LABELS, "x_", "ts", "level", "code", "message", "status", "time", "", "temp"]
records = st.dictionaries(st.sampled_from(KEYS), scalars, max_size=6)
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=6))
objects = st.dictionaries(keys, scalars, max_size=6)
plausible_scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**60), 2**60),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
plausible_values = st.one_of(
    st.builds(lambda v: {"v": v}, st.floats(allow_nan=False, allow_infinity=False)),
    st.builds(lambda v: {"vs": v}, st.text(max_size=4)),
    st.builds(lambda v: {"vb": v}, st.booleans()),
    st.just({"vd": "aGkgCg"}),
    st.builds(lambda v: {"s": v}, st.integers(-100, 100)),
)
plausible_extras = st.lists(
    st.sampled_from(
        [
            ("t", -10),
            ("t", 0),
            ("t", 1.5),
            ("t", 400),
            ("t", 1764038000),
            ("t", 2**28),
            ("u", "Cel"),
            ("u", ""),
            ("u", "%RH"),
            ("bn", "dev-1/"),
            ("bn", "urn:dev:ow:dev-1:"),
            ("bt", -60),
            ("bt", 1764038000),
            ("bv", 2),
            ("bs", 1),
            ("bver", 11),
            ("bver", 5),
            ("zz_", 1),
            ("vd", "a"),
            ("vs", "x"),
            ("ut", 5),
            ("n", "e f"),
            ("n", "time"),
        ]
    ),
    max_size=2,
).map(dict)
plausible_records = st.builds(
    lambda n, v, e: {"n": n, **v, **e},
    st.sampled_from(["a", "b", "dev-1/c", "urn:dev:x:dev-1:d", "dev-1", "c"]),
    plausible_values,
    plausible_extras,
)
plausible_objects = st.dictionaries(
    st.sampled_from(["temp", "hum", "ts", "level", "code", "message", "status", "x y", ""]),
    st.one_of(plausible_scalars, st.sampled_from(["info", "online", "error", 1764038400123])),
    max_size=6,
)
plausible_events = st.builds(
    lambda level, rest: {**rest, "level": level},
    st.sampled_from(["debug", "info", "warning", "error", "critical", "INFO", "loud"]),
    plausible_objects,
)
structured = st.one_of(
    plausible_events,
    st.lists(records, max_size=8),
    objects,
    json_values,
    st.lists(plausible_records, min_size=1, max_size=10),
    plausible_objects,
)


def encode(value: Any) -> bytes:
    return json.dumps(value).encode()


payloads = st.one_of(
    st.binary(max_size=200),
    structured.map(encode),
    st.sampled_from([b"online", b" offline ", b"\xef\xbb\xbf{}", b"[" * 5000, b"{" * 5000]),
    st.builds(  # valid-looking JSON with a few bytes spliced in
        lambda b, i, x: b[:i] + x + b[i:],
        structured.map(encode),
        st.integers(0, 50),
        st.binary(max_size=3),
    ),
)


def check(topic: str, result: object) -> None:
    _root, device_id, kind_name = topic.split("/")
    kind = Kind(kind_name)
    if kind in MEASUREMENTS:
        assert isinstance(result, list) and result
        for p in result:
            assert isinstance(p, Point)
            assert p.measurement == MEASUREMENTS[kind]
            assert p.device_id == device_id
            assert type(p.ts_ns) is int
            assert 0 <= p.ts_ns <= NOW_NS + int(WINDOW_S * 1e9)
            assert p.fields
            for name, value in p.fields.items():
                assert FIELD_KEY.fullmatch(name) and name not in RESERVED_FIELDS
                assert type(value) in (float, bool, str)
                if type(value) is float:
                    assert math.isfinite(value)
                if type(value) is str:
                    value.encode("utf-8")  # no lone surrogates
                    assert not has_control(value)
            assert all(type(k) is str and type(v) is str and v for k, v in p.tags.items())
            assert all(k == "level" or TAG_VALUE.fullmatch(v) for k, v in p.tags.items())
    elif kind in COLLECTIONS:
        assert isinstance(result, Document)
        assert result.collection == COLLECTIONS[kind]
        assert result.device_id == device_id
        assert isinstance(result.body, dict)
        assert len(result.key) == 32
    else:
        assert isinstance(result, StatusChange)
        assert result.device_id == device_id
        assert math.isfinite(result.at)


def decoded_or_rejected(topic: str, payload: bytes) -> Any:
    """Decode without the guard: only ``Rejected`` (with a detail) may escape; accepted output is checked."""
    try:
        result = dec.decode_unguarded(topic, payload, NOW_NS)
    except Rejected as e:
        assert e.detail
        event(f"rejected: {e.reason}")
        return None
    event(f"accepted: {type(result).__name__}")
    check(topic, result)
    return result


@FUZZ
@given(topic=topics, payload=payloads)
def test_any_topic_any_bytes(topic: str, payload: bytes) -> None:
    decoded_or_rejected(topic, payload)


@FUZZ
@given(topic=good_topics, value=structured)
def test_json_values_on_every_kind(topic: str, value: Any) -> None:
    payload = encode(value)
    result = decoded_or_rejected(topic, payload)
    if result is not None:
        assert dec.decode(topic, payload, NOW_NS) == result  # deterministic


@FUZZ
@given(topic=st.text(max_size=30), payload=st.binary(max_size=64), now=st.integers())
def test_guarded_decode_raises_only_rejected(topic: str, payload: bytes, now: int) -> None:
    with contextlib.suppress(Rejected):
        dec.decode(topic, payload, now)


names = st.text("abcdefgh0123456789_-.", min_size=1, max_size=8).map(lambda s: "r" + s)
finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300)


@FUZZ
@given(
    readings=st.dictionaries(names, finite, min_size=1, max_size=12),
    unit=st.sampled_from([None, "Cel", "%RH", "V"]),
    base_time=st.integers(1_600_000_000, 1_764_000_000),
)
def test_valid_senml_packs_keep_every_reading(readings: dict[str, float], unit: str | None, base_time: int) -> None:
    pack: list[dict[str, Any]] = [{"bn": "dev-1/", "bt": base_time}]
    if unit:
        pack[0]["bu"] = unit
    pack += [{"n": n, "v": v} for n, v in readings.items()]
    got = dec.decode_unguarded("devices/dev-1/telemetry", encode(pack), NOW_NS)
    assert isinstance(got, list) and len(got) == 1
    point = got[0]
    assert point.fields == {n: float(v) for n, v in readings.items()}
    assert point.ts_ns == base_time * 10**9
    assert point.tags == ({"unit": unit} if unit else {})


no_surrogates = st.characters(exclude_categories=["Cs"])
CONTROL = "".join(c for c in map(chr, range(0x2070)) if UNSAFE.match(c))  # controls, C1, separators, bidi
printable = st.characters(exclude_categories=["Cs"], exclude_characters=CONTROL) | st.just("\t")


@FUZZ
@given(
    fields=st.dictionaries(
        st.from_regex(FIELD_KEY, fullmatch=True).filter(lambda k: k not in RESERVED_FIELDS and k != "ts"),
        st.one_of(st.booleans(), st.integers(-(2**60), 2**60), finite, st.text(printable, max_size=10)),
        min_size=1,
        max_size=10,
    )
)
def test_valid_json_objects_keep_every_field(fields: dict[str, Any]) -> None:
    got = dec.decode_unguarded("devices/dev-1/metrics", encode(fields), NOW_NS)
    assert isinstance(got, list) and len(got) == 1
    point = got[0]
    assert point.fields == {k: float(v) if type(v) is int else v for k, v in fields.items()}
    assert point.ts_ns == NOW_NS


@FUZZ
@given(
    topic=st.sampled_from([f"devices/dev-1/{k}" for k in ("telemetry", "metrics", "events")]),
    value=st.one_of(st.lists(plausible_records, min_size=1, max_size=10), plausible_objects, plausible_events),
)
def test_plausible_time_series_payloads(topic: str, value: Any) -> None:
    try:
        result = dec.decode_unguarded(topic, encode(value), NOW_NS)
    except Rejected as e:
        assert e.detail
        event(f"rejected: {e.reason}")
        return
    event("accepted")
    check(topic, result)
