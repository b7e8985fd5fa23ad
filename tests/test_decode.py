"""Decoder: every rejection reason, acceptance per kind, timestamps, duplicates."""

from __future__ import annotations

import hashlib
import json

import pytest

from core.model import Decoded, Document, Kind, Point, Reason, Rejected, StatusChange
from ingest.decoding.codecs import Source
from ingest.decoding.decode import CODECS, Decoder, parse_topic
from ingest.decoding.timestamps import BadTimestamp, number_to_ns, rfc3339_to_ns

NOW_NS = 1_764_038_400_000_000_000  # 2025-11-25T02:40:00Z
NOW = NOW_NS / 1e9
dec = Decoder(future_window_s=300.0)


def decode(topic: str, payload: bytes | str | object, now_ns: int = NOW_NS) -> Decoded:
    if isinstance(payload, str):
        raw = payload.encode()
    elif isinstance(payload, bytes):
        raw = payload
    else:
        raw = json.dumps(payload).encode()
    return dec.decode(topic, raw, now_ns)


def one(topic: str, payload: object) -> Point:
    got = decode(topic, payload)
    assert isinstance(got, list) and len(got) == 1
    return got[0]


def rejected(topic: str, payload: bytes | str | object, decoder: Decoder = dec) -> Rejected:
    raw = (
        payload
        if isinstance(payload, bytes)
        else (payload.encode() if isinstance(payload, str) else json.dumps(payload).encode())
    )
    with pytest.raises(Rejected) as e:
        decoder.decode(topic, raw, NOW_NS)
    assert e.value.detail  # always a human-readable detail
    return e.value


T = "devices/d1/telemetry"

REJECTIONS: list[tuple[Reason, str, object]] = [
    (Reason.BAD_TOPIC, "devices/d1", {"a": 1}),
    (Reason.BAD_TOPIC, "devices/d1/telemetry/x", {"a": 1}),
    (Reason.BAD_TOPIC, "other/d1/telemetry", {"a": 1}),
    (Reason.BAD_TOPIC, "devices//telemetry", {"a": 1}),
    (Reason.BAD_TOPIC, "devices/" + "x" * 65 + "/telemetry", {"a": 1}),
    (Reason.BAD_TOPIC, "devices/bad id/telemetry", {"a": 1}),
    (Reason.BAD_TOPIC, "devices/dé/telemetry", {"a": 1}),
    (Reason.BAD_TOPIC, "", {"a": 1}),
    (Reason.UNKNOWN_KIND, "devices/d1/telemetryx", {"a": 1}),
    (Reason.UNKNOWN_KIND, "devices/d1/", {"a": 1}),
    (Reason.UNKNOWN_KIND, "devices/d1/Telemetry", {"a": 1}),
    (Reason.OVERSIZE, T, b"{" + b" " * (256 * 1024) + b"}"),
    (Reason.INVALID_UTF8, T, b'{"a": "\xff"}'),
    (Reason.INVALID_UTF8, T, b'\xef\xbb\xbf{"a": 1}'[3:].decode().encode("utf-16")),
    (Reason.INVALID_UTF8, T, '{"a": "\\ud800"}'),
    (Reason.INVALID_UTF8, "devices/d1/config", '{"a": ["\\udfff"]}'),
    (Reason.INVALID_JSON, T, "{"),
    (Reason.INVALID_JSON, T, ""),
    (Reason.INVALID_JSON, T, '{"a": 1} x'),
    (Reason.INVALID_JSON, T, "[" * 100_000),
    (Reason.INVALID_JSON, T, b'\xef\xbb\xbf{"a": 1}'),
    (Reason.NON_FINITE, T, '{"a": NaN}'),
    (Reason.NON_FINITE, T, '{"a": Infinity}'),
    (Reason.NON_FINITE, T, '{"a": -Infinity}'),
    (Reason.NON_FINITE, T, '{"a": 1e400}'),
    (Reason.NON_FINITE, T, '{"a": 1' + "0" * 400 + "}"),
    (Reason.NON_FINITE, "devices/d1/config", '{"a": [1e400]}'),
    (Reason.NON_FINITE, "devices/d1/events", '{"level": "info", "x": NaN}'),
    (Reason.WRONG_TYPE, T, {"a": None}),
    (Reason.WRONG_TYPE, T, {"a": {"b": 1}}),
    (Reason.WRONG_TYPE, T, {"a": [1]}),
    (Reason.INVALID_NAME, T, {"": 1}),
    (Reason.INVALID_NAME, T, {"a\nb": 1}),
    (Reason.INVALID_NAME, T, {"a\\,b": 1}),
    (Reason.INVALID_NAME, T, {"a b": 1}),
    (Reason.INVALID_NAME, T, {"_value": 1}),
    (Reason.INVALID_NAME, T, {"x" * 129: 1}),
    (Reason.INVALID_NAME, "devices/d1/events", {"level": "info", "bad key": 1}),
    (Reason.INVALID_NAME, T, [{"n": "a", "u": "a\\ b\\,c\\,d", "vs": "x"}]),
    (Reason.INVALID_NAME, T, [{"n": "a", "u": "C\n", "v": 1}]),
    (Reason.INVALID_NAME, T, [{"n": "d1/_x", "v": 1}]),
    (Reason.RESERVED_NAME, T, {"time": 1}),
    (Reason.RESERVED_NAME, T, {"device_id": "victim", "temperature": 1000}),
    (Reason.RESERVED_NAME, T, {"site": "A", "x": 1}),
    (Reason.RESERVED_NAME, "devices/d1/metrics", {"device_type": "x", "cpu": 1}),
    (Reason.RESERVED_NAME, T, {"unit": "C", "x": 1}),
    (Reason.RESERVED_NAME, T, {"level": "info", "x": 1}),
    (Reason.RESERVED_NAME, "devices/d1/events", {"level": "info", "device_id": "victim"}),
    (Reason.RESERVED_NAME, "devices/d1/events", {"level": "info", "site": "B"}),
    (Reason.RESERVED_NAME, T, [{"n": "device_id", "vs": "victim"}]),
    (Reason.RESERVED_NAME, "devices/d1/metrics", [{"bn": "d1/", "n": "site", "vs": "B"}]),
    (Reason.RESERVED_NAME, T, [{"n": "time", "v": 1}]),
    (Reason.WRONG_TYPE, T, {"m": "x\nsensor_readings,device_id=victim temperature=999 1\n#"}),
    (Reason.WRONG_TYPE, T, {"m": "a\rb"}),
    (Reason.WRONG_TYPE, "devices/d1/events", {"level": "info", "message": "x\nsensor_readings,device_id=v t=1"}),
    (Reason.WRONG_TYPE, "devices/d1/events", {"level": "info", "code": "E\u0000"}),
    (Reason.INVALID_SENML, T, [{"n": "a", "vs": "x\ny"}]),
    (Reason.TOO_MANY_FIELDS, T, {f"f{i}": 1 for i in range(257)}),
    (Reason.TOO_MANY_FIELDS, T, [{"n": f"f{i}", "v": 1} for i in range(257)]),
    (Reason.TOO_MANY_FIELDS, T, [{"n": "t", "u": f"u{i}", "v": 1} for i in range(17)]),
    (Reason.WRONG_TYPE, T, 42),
    (Reason.WRONG_TYPE, T, '"temperature=21"'),
    (Reason.WRONG_TYPE, "devices/d1/metrics", None),
    (Reason.WRONG_TYPE, "devices/d1/events", {"message": "no level"}),
    (Reason.WRONG_TYPE, "devices/d1/events", {"level": "loud"}),
    (Reason.WRONG_TYPE, "devices/d1/events", {"level": 3}),
    (Reason.WRONG_TYPE, "devices/d1/events", {"level": "info", "code": 4.5}),
    (Reason.WRONG_TYPE, "devices/d1/events", {"level": "info", "message": ["x"]}),
    (Reason.WRONG_TYPE, "devices/d1/events", [{"level": "info"}]),
    (Reason.WRONG_TYPE, "devices/d1/config", [1, 2]),
    (Reason.WRONG_TYPE, "devices/d1/firmware", '"1.2.3"'),
    (Reason.WRONG_TYPE, "devices/d1/maintenance", {"$set": 1}),
    (Reason.WRONG_TYPE, "devices/d1/config", {"a\u0000b": 1}),
    (Reason.WRONG_TYPE, "devices/d1/config", {"big": 2**64}),
    (Reason.WRONG_TYPE, "devices/d1/config", json.loads("[" * 70 + "{}" + "]" * 70)),
    (Reason.WRONG_TYPE, "devices/d1/config", {"a": json.loads("[" * 70 + "]" * 70)}),
    (Reason.WRONG_TYPE, "devices/d1/status", "maybe"),
    (Reason.WRONG_TYPE, "devices/d1/status", {"status": "up"}),
    (Reason.WRONG_TYPE, "devices/d1/status", {"online": True}),
    (Reason.WRONG_TYPE, "devices/d1/status", "[1]"),
    (Reason.WRONG_TYPE, "devices/d1/status", "{"),
    (Reason.NO_FIELDS, T, {}),
    (Reason.NO_FIELDS, T, {"ts": 1764038400}),
    (Reason.NO_FIELDS, "devices/d1/metrics", []),
    (Reason.NO_FIELDS, T, [{"bn": "d1/"}]),
    (Reason.BAD_TIMESTAMP, T, {"ts": "yesterday", "a": 1}),
    (Reason.BAD_TIMESTAMP, T, {"ts": "2025-11-25T02:40:00", "a": 1}),
    (Reason.BAD_TIMESTAMP, T, {"ts": "2025-02-30T00:00:00Z", "a": 1}),
    (Reason.BAD_TIMESTAMP, T, {"ts": -1, "a": 1}),
    (Reason.BAD_TIMESTAMP, T, {"ts": True, "a": 1}),
    (Reason.BAD_TIMESTAMP, T, {"ts": None, "a": 1}),
    (Reason.BAD_TIMESTAMP, T, {"ts": [1], "a": 1}),
    (Reason.BAD_TIMESTAMP, T, {"ts": 2**63, "a": 1}),
    (Reason.BAD_TIMESTAMP, T, [{"n": "a", "v": 1, "t": -2e9}]),
    (Reason.BAD_TIMESTAMP, "devices/d1/status", {"status": "online", "ts": "x"}),
    (Reason.FUTURE_TIMESTAMP, T, {"ts": NOW + 301, "a": 1}),
    (Reason.FUTURE_TIMESTAMP, T, {"ts": NOW_NS + 301 * 10**9, "a": 1}),
    (Reason.FUTURE_TIMESTAMP, T, {"ts": "2030-01-01T00:00:00Z", "a": 1}),
    (Reason.FUTURE_TIMESTAMP, "devices/d1/events", {"ts": NOW + 3600, "level": "info"}),
    (Reason.FUTURE_TIMESTAMP, T, [{"n": "a", "v": 1, "t": 301}]),
    (Reason.FUTURE_TIMESTAMP, "devices/d1/status", {"status": "offline", "ts": NOW + 1e6}),
    (Reason.INVALID_SENML, T, [{"n": "a"}]),
    (Reason.INVALID_SENML, T, [{"n": "a", "v": 1, "vs": "x"}]),
    (Reason.INVALID_SENML, "devices/d1/metrics", [{"n": "a", "v": 1, "x_": 0}]),
    (Reason.INVALID_SENML, T, [{"n": "a", "vd": "!!"}]),
    (Reason.INVALID_SENML, T, [{"n": "a", "v": 1, "bver": 11}]),
    (Reason.INVALID_SENML, T, [1, 2]),
]

DECODER_REASONS = set(Reason) - {
    Reason.UNKNOWN_DEVICE,
    Reason.DEVICE_DISABLED,
    Reason.DEVICE_RETIRED,
    Reason.STORE_REJECTED,
    Reason.CARDINALITY_LIMIT,
    Reason.UNKNOWN_ALIAS,  # Sparkplug's: tests/test_sparkplug_decode.py
    Reason.WRONG_GATEWAY,  # the router's: tests/test_gateways.py
}


@pytest.mark.parametrize(
    ("reason", "topic", "payload"),
    REJECTIONS,
    ids=[f"{r.value}-{i}" for i, (r, _, _) in enumerate(REJECTIONS)],
)
def test_rejection_reason(reason: Reason, topic: str, payload: object) -> None:
    assert rejected(topic, payload).reason is reason


def test_every_decoder_reason_is_covered() -> None:
    assert {r for r, _, _ in REJECTIONS} == DECODER_REASONS


def test_oversize_is_checked_before_decoding() -> None:
    small = Decoder(max_payload_bytes=10)
    assert rejected(T, b"\xff" * 11, small).reason is Reason.OVERSIZE
    assert small.decode(T, b'{"a": 1.5}', NOW_NS) == [Point("sensor_readings", "d1", {"a": 1.5}, NOW_NS)]


# --- topics -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(Kind))
def test_parse_topic_every_kind(kind: Kind) -> None:
    assert parse_topic(f"devices/a-Z_0.9:x/{kind.value}") == ("a-Z_0.9:x", kind)


def test_parse_topic_custom_root_and_64_char_id() -> None:
    dev = "x" * 64
    assert parse_topic(f"site/1/{dev}/metrics", "site/1") == (dev, Kind.METRICS)
    assert Decoder(topic_root="fleet").decode("fleet/d/metrics", b'{"cpu": 3}', NOW_NS) == [
        Point("device_metrics", "d", {"cpu": 3.0}, NOW_NS)
    ]
    with pytest.raises(Rejected) as e:
        parse_topic("devices/d/metrics", "fleet")
    assert e.value.reason is Reason.BAD_TOPIC


# --- telemetry / metrics ------------------------------------------------------------------


def test_telemetry_object() -> None:
    got = decode(T, {"ts": 1764038400123, "temperature": 21.5, "humidity": 40, "ok": True})
    assert got == [
        Point(
            "sensor_readings",
            "d1",
            {"temperature": 21.5, "humidity": 40.0, "ok": True},
            1_764_038_400_123_000_000,
            {},
        )
    ]


def test_numbers_are_always_float_and_strings_bools_kept() -> None:
    p = one("devices/d1/metrics", {"cpu": 3, "fw": "1.2", "charging": False, "x": -0})
    assert p.measurement == "device_metrics"
    assert p.fields == {"cpu": 3.0, "fw": "1.2", "charging": False, "x": 0.0}
    assert all(type(v) in (float, bool, str) for v in p.fields.values())
    assert type(p.fields["cpu"]) is float


def test_missing_ts_means_arrival_time() -> None:
    p = one(T, {"a": 1})
    assert p.ts_ns == NOW_NS


def test_odd_but_valid_field_names_are_kept() -> None:
    p = one(T, {"a.b/c": 2, "9lives": "x", "TS": 3, "x:y-z_1": 4, "Device_ID": 5, "time2": 6})
    assert set(p.fields) == {"a.b/c", "9lives", "TS", "x:y-z_1", "Device_ID", "time2"}


def test_tab_in_a_string_is_kept() -> None:
    assert one(T, {"m": "a\tb"}).fields == {"m": "a\tb"}


def test_senml_pack_on_metrics() -> None:
    pack = [{"bn": "d1/", "bt": NOW - 10, "bu": "%", "n": "cpu", "v": 12}, {"n": "mem", "v": 50}]
    assert decode("devices/d1/metrics", pack) == [
        Point("device_metrics", "d1", {"cpu": 12.0, "mem": 50.0}, NOW_NS - 10 * 10**9, {"unit": "%"})
    ]


# --- timestamps ---------------------------------------------------------------------------

S = 1_764_038_400


@pytest.mark.parametrize(
    ("ts", "ns"),
    [
        (S, S * 10**9),
        (S + 0.5, S * 10**9 + 500_000_000),
        (S * 1000 + 123, S * 10**9 + 123_000_000),
        (S * 1000 + 123.5, S * 10**9 + 123_500_000),
        (S * 10**6 + 123456, S * 10**9 + 123_456_000),
        (S * 10**9 + 123456789, S * 10**9 + 123_456_789),
        (0, 0),
        (9_223_372_036, 9_223_372_036 * 10**9),  # 2262-04-11: the end of int64 ns
        (100_000_000_000, 100_000_000_000 * 10**6),  # smallest ms value: 1973-03-03
        (10**14, 10**14 * 1000),  # smallest microseconds value
        (10**17, 10**17),  # smallest nanoseconds value
        (2**63 - 1, 2**63 - 1),
    ],
)
def test_numeric_timestamp_magnitudes(ts: float, ns: int) -> None:
    assert number_to_ns(ts) == ns


@pytest.mark.parametrize("ts", [9_223_372_037, 99_999_999_999, 2**63, 9.3e18, -1, -0.5])
def test_numeric_timestamps_out_of_range(ts: float) -> None:
    with pytest.raises(BadTimestamp):
        number_to_ns(ts)


def test_all_units_of_one_instant_agree() -> None:
    same = {number_to_ns(S * m) for m in (1, 1000, 10**6, 10**9)}
    assert same == {S * 10**9}


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("2025-11-25T02:40:00Z", S * 10**9),
        ("2025-11-25t02:40:00z", S * 10**9),
        ("2025-11-25 02:40:00Z", S * 10**9),
        ("2025-11-25T03:40:00+01:00", S * 10**9),
        ("2025-11-24T21:10:00-05:30", S * 10**9),
        ("2025-11-25T02:40:00.5Z", S * 10**9 + 500_000_000),
        ("2025-11-25T02:40:00.123456789Z", S * 10**9 + 123_456_789),
        ("2025-11-25T02:40:00.1234567891Z", S * 10**9 + 123_456_789),
        ("2016-12-31T23:59:60Z", 1_483_228_800 * 10**9),  # leap second: the next second
        ("1970-01-01T00:00:00Z", 0),
    ],
)
def test_rfc3339(text: str, ns: int) -> None:
    assert rfc3339_to_ns(text) == ns


@pytest.mark.parametrize(
    "text",
    [
        "2025-11-25T02:40:00",
        "2025-11-25",
        "20251125T024000Z",
        "2025-11-25T02:40:00.Z",
        "2025-11-25T24:00:00Z",
        "2025-11-25T02:60:00Z",
        "2025-13-01T00:00:00Z",
        "2025-11-25T02:40:00+24:00",
        "2025-11-25T02:40:00+0100",
        "\uff11\uff19\uff17\uff10-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "2025-11-25T02:40:00Z trailing",
    ],
)
def test_rfc3339_rejects(text: str) -> None:
    with pytest.raises(BadTimestamp):
        rfc3339_to_ns(text)


def test_rfc3339_ts_in_message() -> None:
    p = one(T, {"ts": "2025-11-25T02:39:59.25Z", "a": 1})
    assert p.ts_ns == NOW_NS - 750_000_000


def test_future_window_edge() -> None:
    p = one(T, {"ts": (NOW_NS + 300 * 10**9), "a": 1})
    assert p.ts_ns == NOW_NS + 300 * 10**9
    assert rejected(T, {"ts": NOW_NS + 300 * 10**9 + 1, "a": 1}).reason is Reason.FUTURE_TIMESTAMP
    strict = Decoder(future_window_s=0)
    assert rejected(T, {"ts": NOW_NS + 1, "a": 1}, strict).reason is Reason.FUTURE_TIMESTAMP
    assert strict.decode(T, b'{"a": 1}', NOW_NS) == [Point("sensor_readings", "d1", {"a": 1.0}, NOW_NS)]


def test_old_timestamps_are_kept() -> None:
    p = one(T, {"ts": "2001-01-01T00:00:00Z", "a": 1})
    assert p.ts_ns == 978_307_200 * 10**9


# --- events -------------------------------------------------------------------------------


def test_event_full() -> None:
    got = decode(
        "devices/d1/events",
        {"ts": S, "level": "Warning", "code": "E42", "message": "door open", "zone": 3, "x": "y"},
    )
    assert got == [
        Point(
            "event_logs",
            "d1",
            {"zone": 3.0, "x": "y", "code": "E42", "message": "door open"},
            S * 10**9,
            {"level": "warning"},
        )
    ]


def test_event_level_only_gets_count() -> None:
    assert decode("devices/d1/events", {"level": "critical"}) == [
        Point("event_logs", "d1", {"count": 1.0}, NOW_NS, {"level": "critical"})
    ]


def test_event_integer_code_becomes_string() -> None:
    p = one("devices/d1/events", {"level": "error", "code": 42})
    assert p.fields == {"code": "42"}


@pytest.mark.parametrize("level", ["debug", "info", "warning", "error", "critical"])
def test_event_levels(level: str) -> None:
    p = one("devices/d1/events", {"level": level, "message": "m"})
    assert p.tags == {"level": level}


def test_event_level_detail_is_clear() -> None:
    e = rejected("devices/d1/events", {"message": "x"})
    assert "level" in e.detail and "critical" in e.detail


# --- documents ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "collection"),
    [
        ("config", "device_configs"),
        ("firmware", "firmware"),
        ("maintenance", "maintenance_records"),
    ],
)
def test_documents(kind: str, collection: str) -> None:
    topic = f"devices/d1/{kind}"
    payload = b'{"interval": 5, "nested": {"a": [1, 2.5, null, "x"]}, "k.dot": true}'
    got = dec.decode(topic, payload, NOW_NS)
    key = hashlib.sha256(topic.encode() + b"\0" + payload).hexdigest()[:32]
    assert got == Document(
        collection,
        "d1",
        key,
        {"interval": 5, "nested": {"a": [1, 2.5, None, "x"]}, "k.dot": True},
        NOW,
    )


def test_document_key_differs_by_topic_and_payload() -> None:
    a = dec.decode("devices/d1/config", b'{"a": 1}', NOW_NS)
    b = dec.decode("devices/d2/config", b'{"a": 1}', NOW_NS)
    c = dec.decode("devices/d1/config", b'{"a": 2}', NOW_NS)
    assert isinstance(a, Document) and isinstance(b, Document) and isinstance(c, Document)
    assert len({a.key, b.key, c.key}) == 3


# --- status -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "online", "at"),
    [
        (b"online", True, NOW),
        (b"  OFFLINE\n", False, NOW),
        (b"Online", True, NOW),
        (b'"offline"', False, NOW),
        (b'{"status": "online"}', True, NOW),
        (b'{"status": "Offline", "ts": 1764038300}', False, 1_764_038_300.0),
    ],
)
def test_status(payload: bytes, online: bool, at: float) -> None:
    assert dec.decode("devices/d1/status", payload, NOW_NS) == StatusChange("d1", online, at)


# --- duplicates ---------------------------------------------------------------------------


def test_duplicates_decode_identically() -> None:
    for topic, payload in [
        ("devices/d1/config", b'{"a": 1}'),
        (T, b'{"ts": 1764038400, "a": 1}'),
        (T, b'[{"n": "a", "v": 1, "t": 1764038400}]'),
        ("devices/d1/events", b'{"ts": 1764038400, "level": "info"}'),
    ]:
        first = dec.decode(topic, payload, NOW_NS)
        again = dec.decode(topic, payload, NOW_NS + 5 * 10**9)  # redelivered later
        if isinstance(first, Document):
            assert isinstance(again, Document)
            assert first.key == again.key and first.body == again.body
        else:
            assert first == again


def test_decoder_does_not_mutate_or_alias_between_calls() -> None:
    a = dec.decode(T, b'{"a": 1}', NOW_NS)
    b = dec.decode(T, b'{"a": 1}', NOW_NS)
    assert isinstance(a, list) and isinstance(b, list)
    assert a == b and a[0].fields is not b[0].fields


class _Hex:
    """A toy codec: ``#`` then hex digits, one field ``v``. Shows a new format is one class plus a registration."""

    name = "hex"
    kinds = frozenset({Kind.TELEMETRY})
    first_bytes = frozenset(b"#")

    def decode(self, source: Source, payload: bytes, now_ns: int, latest_ns: int) -> list[Point]:
        try:
            value = float(int(payload.strip()[1:], 16))
        except ValueError:
            raise Rejected(Reason.WRONG_TYPE, "not hex") from None
        return [Point(source.measurement, source.device_id, {"v": value}, now_ns, {})]


def test_a_registered_codec_claims_its_payloads_and_only_those() -> None:
    d = Decoder(codecs=(*CODECS, _Hex()))
    assert d.decode("devices/d/telemetry", b" #ff", NOW_NS) == [Point("sensor_readings", "d", {"v": 255.0}, NOW_NS, {})]
    with pytest.raises(Rejected) as e:
        d.decode("devices/d/telemetry", b"#zz", NOW_NS)
    assert e.value.reason is Reason.WRONG_TYPE and e.value.detail == "not hex"
    # not registered for metrics, and absent from the default decoder: the JSON parse decides
    for decoder, topic in ((d, "devices/d/metrics"), (dec, "devices/d/telemetry")):
        with pytest.raises(Rejected) as e:
            decoder.decode(topic, b"#ff", NOW_NS)
        assert e.value.reason is Reason.INVALID_JSON
    # JSON keeps working beside it
    assert d.decode("devices/d/telemetry", b'{"t": 1}', NOW_NS) == [
        Point("sensor_readings", "d", {"t": 1.0}, NOW_NS, {})
    ]


def test_two_codecs_claiming_the_same_payloads_are_refused() -> None:
    with pytest.raises(ValueError, match="both claim"):
        Decoder(codecs=(*CODECS, _Hex(), _Hex()))
