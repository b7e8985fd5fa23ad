"""The MQTT packet codec: round trips, partial reads at every split point, garbage never escapes as anything
but ProtocolError."""

from __future__ import annotations

import contextlib
import hashlib
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.mqtt import packets as pk
from ingest.mqtt.packets import Ack, Connack, Oversized, Packet, Parser, Pingresp, ProtocolError, Publish, Suback

topics = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40)
payloads = st.binary(max_size=300)


@st.composite
def publishes(draw: st.DrawFn) -> Publish:
    qos = draw(st.integers(0, 2))
    mid = draw(st.integers(1, 0xFFFF)) if qos else 0
    return Publish(draw(topics), draw(payloads), qos, mid, draw(st.booleans()), draw(st.booleans()))


acks = st.builds(Ack, st.sampled_from([pk.PUBACK, pk.PUBREC, pk.PUBREL, pk.PUBCOMP]), st.integers(1, 0xFFFF))
subacks = st.builds(
    Suback, st.just(pk.SUBACK), st.integers(1, 0xFFFF), st.lists(st.sampled_from([0, 1, 2, 0x80]), min_size=1)
)
connacks = st.builds(Connack, st.booleans(), st.sampled_from([0, 5]))
server_packets = st.lists(st.one_of(publishes(), acks, subacks, connacks, st.just(Pingresp())), max_size=12)


def encode(p: Packet, v5: bool) -> bytes:
    if isinstance(p, Publish):
        return pk.encode_publish(p.topic, p.payload, qos=p.qos, mid=p.mid, retain=p.retain, dup=p.dup, v5=v5)
    if isinstance(p, Ack):
        return pk.encode_acks(p.kind, [p.mid])
    if isinstance(p, Suback):
        return pk.encode_suback(p.mid, p.reasons, v5=v5)
    if isinstance(p, Connack):
        return pk.encode_connack(p.session_present, p.reason, v5=v5)
    return b"\xd0\x00"


def feed_chunks(parser: Parser, data: bytes, cuts: list[int]) -> list[Packet]:
    out: list[Packet] = []
    prev = 0
    for c in [*sorted(set(cuts)), len(data)]:
        out += parser.feed(data[prev:c])
        prev = c
    return out


@settings(max_examples=300, deadline=None)
@given(server_packets, st.booleans(), st.lists(st.integers(0, 4000), max_size=20))
def test_round_trip_with_any_chunking(packets: list[Packet], v5: bool, cuts: list[int]) -> None:
    data = b"".join(encode(p, v5) for p in packets)
    cuts = [c for c in cuts if c <= len(data)]
    assert feed_chunks(Parser(v5=v5), data, cuts) == packets


@pytest.mark.parametrize("v5", [False, True])
def test_every_split_point(v5: bool) -> None:
    packets: list[Packet] = [
        Publish("devices/a/telemetry", b'{"t": 1}' * 40, 1, 7, False, True),
        Ack(pk.PUBREL, 9),
        Publish("d/" + "x" * 200, b"y" * 20000, 2, 65535, True, False),
        Pingresp(),
        Publish("z", b"", 0, 0, False, False),
        Suback(pk.SUBACK, 1, [1, 0x80]),
    ]
    data = b"".join(encode(p, v5) for p in packets)
    for k in range(len(data) + 1):
        assert feed_chunks(Parser(v5=v5), data, [k]) == packets, k
    # and one byte at a time
    assert feed_chunks(Parser(v5=v5), data, list(range(len(data)))) == packets


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=600), st.booleans(), st.lists(st.integers(0, 600), max_size=8))
def test_garbage_raises_only_protocol_error(data: bytes, v5: bool, cuts: list[int]) -> None:
    with contextlib.suppress(ProtocolError):
        feed_chunks(Parser(v5=v5), data, [c for c in cuts if c <= len(data)])


@settings(max_examples=300, deadline=None)
@given(publishes(), st.booleans(), st.integers(0, 3), st.binary(min_size=1, max_size=8))
def test_corrupted_packet_raises_only_protocol_error(p: Publish, v5: bool, where: int, junk: bytes) -> None:
    data = bytearray(encode(p, v5))
    pos = min(where, len(data) - 1)
    data[pos : pos + len(junk)] = junk
    with contextlib.suppress(ProtocolError):
        Parser(v5=v5).feed(bytes(data))


def test_malformed_lengths() -> None:
    with pytest.raises(ProtocolError, match="longer than 4 bytes"):
        Parser(v5=False).feed(b"\x30\xff\xff\xff\xff\x01")
    with pytest.raises(ProtocolError, match="too short"):
        Parser(v5=False).feed(b"\x32\x03\x00\x01a")  # QoS 1 publish with no room for the packet id
    with pytest.raises(ProtocolError, match="too short"):
        Parser(v5=False).feed(b"\x30\x01\x00")  # topic length itself truncated
    with pytest.raises(ProtocolError, match="exceeds"):
        Parser(v5=False, max_packet=10).feed(b"\x90\x0b")  # oversize SUBACK: refused on its fixed header
    with pytest.raises(ProtocolError, match="QoS 3"):
        Parser(v5=False).feed(b"\x36\x04\x00\x01a\x00")
    with pytest.raises(ProtocolError, match="packet id 0"):
        Parser(v5=False).feed(b"\x32\x05\x00\x01a\x00\x00")
    with pytest.raises(ProtocolError, match="reserved flags"):
        Parser(v5=False).feed(b"\x41\x02\x00\x01")
    with pytest.raises(ProtocolError, match="unexpected packet type"):
        Parser(v5=False).feed(b"\x10\x00")  # CONNECT from a server
    with pytest.raises(ProtocolError, match="unknown property"):
        Parser(v5=True).feed(b"\x30\x06\x00\x01a\x02\x7f\x00")


def test_incomplete_input_is_kept_not_rejected() -> None:
    parser = Parser(v5=False)
    assert parser.feed(b"\x30\xff\xff") == []  # a remaining length still arriving
    assert parser.feed(b"\x01") == []
    assert parser.feed(b"\x00\x01a" + b"p" * 30000) == []  # remaining length 32767
    assert parser.feed(b"p" * 2764) == [Publish("a", b"p" * 32764)]


def test_v5_properties_are_decoded() -> None:
    props = {pk.RECEIVE_MAXIMUM: 10, pk.SESSION_EXPIRY_INTERVAL: 60, pk.USER_PROPERTY: [("k", "v")]}
    (connack,) = Parser(v5=True).feed(pk.encode_connack(True, 0, v5=True, properties=props))
    assert connack == Connack(True, 0, props)
    publish = b"\x30\x0a\x00\x01t\x05\x02\x00\x00\x00\x3cP"  # message expiry interval 60
    (p,) = Parser(v5=True).feed(publish)
    assert isinstance(p, Publish) and p.payload == b"P" and p.properties == {0x02: 60}


def test_encoders() -> None:
    assert pk.encode_acks(pk.PUBACK, [1, 0x1234]) == b"\x40\x02\x00\x01\x40\x02\x12\x34"
    assert pk.encode_acks(pk.PUBREL, [5]) == b"\x62\x02\x00\x05"
    assert pk.subscription_options(1, retain_handling=2) == 0x21
    sub = pk.encode_subscribe(3, [("devices/#", 0x21)], v5=True)
    assert sub == b"\x82\x0f\x00\x03\x00\x00\x09devices/#\x21"
    assert pk.encode_subscribe(3, [("a", 0x21)], v5=False) == b"\x82\x06\x00\x03\x00\x01a\x01"
    c = pk.encode_connect(
        "c", keepalive=30, v5=True, clean_start=False, username="u", password="p", session_expiry=7, receive_maximum=9
    )
    assert c == (b"\x10\x1c\x00\x04MQTT\x05\xc0\x00\x1e\x08\x11\x00\x00\x00\x07\x21\x00\x09\x00\x01c\x00\x01u\x00\x01p")
    assert (
        pk.encode_connect("c", keepalive=5, v5=False, clean_start=True)
        == b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x05\x00\x01c"
    )


@given(
    st.lists(publishes(), min_size=1, max_size=4),
    st.integers(0, 3),
    st.booleans(),
    st.lists(st.integers(1, 400), max_size=30),
)
@settings(max_examples=150, deadline=None)
def test_oversize_publish_is_discarded_and_reported_at_any_chunking(
    packets: list[Publish], big: int, v5: bool, cuts: list[int]
) -> None:
    """A PUBLISH over ``max_packet`` among normal ones yields an Oversized (topic, id, size, prefix,
    digest of the payload); the packets around it decode as usual, however the bytes are split."""
    oversize = Publish("dev/big/telemetry", bytes(range(256)) * 3, 1, 77)
    props = b"\x0b\x03\x03\x00\x02ct" if v5 else b""  # subscription id 3, content type "ct"
    body = pk._enc_str(oversize.topic) + (77).to_bytes(2, "big") + (pk._enc_varint(len(props)) + props if v5 else b"")
    raw = b"\x32" + pk._enc_varint(len(body) + 768) + body + oversize.payload
    big = min(big, len(packets))
    parts = [encode(p, v5) for p in packets]
    parts.insert(big, raw)
    got = feed_chunks(Parser(v5=v5, max_packet=700, prefix_bytes=100), b"".join(parts), cuts)
    report = got.pop(big)
    assert got == packets
    assert report == Oversized(
        oversize.topic, 768, oversize.payload[:100], hashlib.sha256(oversize.payload).hexdigest(), 1, 77
    )


def test_a_huge_publish_is_never_held_in_memory() -> None:
    """A PUBLISH announcing 256 MiB: the parser keeps no more than its header and prefix however much
    of the body arrives (it used to gather the whole body before looking at it)."""
    parser = Parser(v5=True, max_packet=1 << 20)
    header = b"\x32\xff\xff\xff\x7f" + pk._enc_str("dev/d1/telemetry") + b"\x00\x05\x00"
    chunk = b"x" * (256 * 1024)
    tracemalloc.start()
    try:
        assert parser.feed(header) == []
        for _ in range(160):  # 40 MiB of body
            assert parser.feed(chunk) == []
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * len(chunk), peak


def test_an_oversize_control_packet_is_refused_on_its_fixed_header() -> None:
    for head in (0x20, 0x90, 0xB0, 0xD0, 0x40):  # CONNACK, SUBACK, UNSUBACK, PINGRESP, PUBACK
        with pytest.raises(ProtocolError, match="exceeds the maximum 1000"):
            Parser(v5=True, max_packet=1000).feed(bytes([head]) + pk._enc_varint(1001))


def test_a_malformed_oversize_publish_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="too short for its variable header"):
        Parser(v5=False, max_packet=4).feed(b"\x30\x05\x00\x09abc")  # topic longer than the packet
    with pytest.raises(ProtocolError, match="packet id 0"):
        Parser(v5=False, max_packet=4).feed(b"\x32\x08\x00\x01a\x00\x00xyz")
    with pytest.raises(ProtocolError, match="inside its header or properties"):
        Parser(v5=True, max_packet=4).feed(b"\x30\x06\x00\x01a\x05xy")  # properties run past the end
