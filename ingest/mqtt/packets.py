"""MQTT 3.1.1 / 5 packet codec for a subscribing client (pure: bytes in, typed packets out).

:class:`Parser` is incremental: ``feed`` takes whatever ``recv`` returned and yields every complete
packet, keeping a partial one for the next call. Anything malformed raises :class:`ProtocolError`
and nothing else. The ``encode_*`` functions build the packets a subscriber sends (plus PUBLISH and
the server packets, for tests and tools).

A packet whose fixed header announces more than ``max_packet`` bytes is refused before its body is
read: a PUBLISH is read on and discarded as it arrives (its topic, packet id, size, the SHA-256 and
the first ``prefix_bytes`` of its payload are kept) and yields an :class:`Oversized`, so it can be
dead-lettered and acknowledged; any other packet type raises :class:`ProtocolError`.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = 8, 9, 10, 11, 12, 13, 14, 15
MAX_REMAINING: Final = 268_435_455

# MQTT 5 property identifiers this client sends or may receive, and their wire types
SESSION_EXPIRY_INTERVAL, RECEIVE_MAXIMUM, MAXIMUM_PACKET_SIZE, TOPIC_ALIAS_MAXIMUM = 0x11, 0x21, 0x27, 0x22
REASON_STRING, USER_PROPERTY, ASSIGNED_CLIENT_ID, SERVER_KEEP_ALIVE = 0x1F, 0x26, 0x12, 0x13
_BYTE, _U16, _U32, _VARINT, _STR, _BIN, _PAIR = range(7)
_PROPERTY_TYPES: Final = {
    0x01: _BYTE,  # payload format indicator
    0x02: _U32,  # message expiry interval
    0x03: _STR,  # content type
    0x08: _STR,  # response topic
    0x09: _BIN,  # correlation data
    0x0B: _VARINT,  # subscription identifier
    0x11: _U32,  # session expiry interval
    0x12: _STR,  # assigned client identifier
    0x13: _U16,  # server keep alive
    0x15: _STR,  # authentication method
    0x16: _BIN,  # authentication data
    0x17: _BYTE,  # request problem information
    0x18: _U32,  # will delay interval
    0x19: _BYTE,  # request response information
    0x1A: _STR,  # response information
    0x1C: _STR,  # server reference
    0x1F: _STR,  # reason string
    0x21: _U16,  # receive maximum
    0x22: _U16,  # topic alias maximum
    0x23: _U16,  # topic alias
    0x24: _BYTE,  # maximum QoS
    0x25: _BYTE,  # retain available
    0x26: _PAIR,  # user property
    0x27: _U32,  # maximum packet size
    0x28: _BYTE,  # wildcard subscription available
    0x29: _BYTE,  # subscription identifiers available
    0x2A: _BYTE,  # shared subscription available
}


class ProtocolError(ValueError):
    """The peer sent something that is not a valid MQTT packet (the connection must be dropped)."""


@dataclass(slots=True)
class Publish:
    topic: str
    payload: bytes
    qos: int = 0
    mid: int = 0
    retain: bool = False
    dup: bool = False
    properties: dict[int, Any] | None = None


@dataclass(slots=True)
class Oversized:
    """A PUBLISH larger than the parser's ``max_packet``, read and discarded: ``size`` is its payload's
    length, ``prefix`` the payload's first bytes and ``sha256`` the hex digest of the whole payload."""

    topic: str
    size: int
    prefix: bytes
    sha256: str
    qos: int = 0
    mid: int = 0
    retain: bool = False
    dup: bool = False


@dataclass(slots=True)
class Connack:
    session_present: bool
    reason: int
    properties: dict[int, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Ack:
    """PUBACK, PUBREC, PUBREL or PUBCOMP (``kind``), with the MQTT 5 reason code (0 in 3.1.1)."""

    kind: int
    mid: int
    reason: int = 0


@dataclass(slots=True)
class Suback:
    """SUBACK or UNSUBACK (``kind``): one reason code per topic filter (granted QoS or >= 0x80)."""

    kind: int
    mid: int
    reasons: list[int]


@dataclass(slots=True)
class Pingresp:
    pass


@dataclass(slots=True)
class Disconnect:
    reason: int = 0
    properties: dict[int, Any] = field(default_factory=dict)


Packet = Publish | Oversized | Connack | Ack | Suback | Pingresp | Disconnect


# -- decoding --------------------------------------------------------------------------------------
def _varint(buf: bytes | bytearray, p: int, end: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if p >= end:
            raise ProtocolError("truncated variable byte integer")
        b = buf[p]
        p += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, p
        shift += 7
        if shift >= 28:
            raise ProtocolError("variable byte integer longer than 4 bytes")


def _u16(buf: bytes, p: int, end: int) -> int:
    if p + 2 > end:
        raise ProtocolError("truncated two-byte integer")
    return (buf[p] << 8) | buf[p + 1]


def _string(buf: bytes, p: int, end: int) -> tuple[str, int]:
    n = _u16(buf, p, end)
    q = p + 2 + n
    if q > end:
        raise ProtocolError("string runs past the end of the packet")
    try:
        return buf[p + 2 : q].decode("utf-8"), q
    except UnicodeDecodeError as e:
        raise ProtocolError(f"string is not UTF-8: {e}") from None


def _properties(buf: bytes, p: int, end: int) -> tuple[dict[int, Any], int]:
    length, p = _varint(buf, p, end)
    stop = p + length
    if stop > end:
        raise ProtocolError("properties run past the end of the packet")
    props: dict[int, Any] = {}
    while p < stop:
        ident, p = _varint(buf, p, stop)
        kind = _PROPERTY_TYPES.get(ident)
        value: Any
        if kind is None:
            raise ProtocolError(f"unknown property 0x{ident:02x}")
        if kind == _BYTE:
            if p >= stop:
                raise ProtocolError("truncated property")
            value, p = buf[p], p + 1
        elif kind == _U16:
            value, p = _u16(buf, p, stop), p + 2
        elif kind == _U32:
            if p + 4 > stop:
                raise ProtocolError("truncated property")
            value, p = int.from_bytes(buf[p : p + 4], "big"), p + 4
        elif kind == _VARINT:
            value, p = _varint(buf, p, stop)
        elif kind == _STR:
            value, p = _string(buf, p, stop)
        elif kind == _BIN:
            n = _u16(buf, p, stop)
            if p + 2 + n > stop:
                raise ProtocolError("truncated property")
            value, p = bytes(buf[p + 2 : p + 2 + n]), p + 2 + n
        else:
            k, p = _string(buf, p, stop)
            v, p = _string(buf, p, stop)
            props.setdefault(ident, []).append((k, v))
            continue
        if ident in props and ident != 0x0B:
            raise ProtocolError(f"property 0x{ident:02x} given twice")
        props[ident] = value
    return props, stop


class Parser:
    """Incremental decoder of the packets a server sends to a client.

    ``v5`` selects MQTT 5 (properties, reason codes) over 3.1.1; it may be set after CONNACK.
    """

    def __init__(self, *, v5: bool, max_packet: int = MAX_REMAINING, prefix_bytes: int = 4096) -> None:
        self.v5 = v5
        self.max_packet = max_packet  # largest remaining length read into memory
        self.prefix_bytes = prefix_bytes
        self._chunks: list[bytes] = []
        self._have = 0
        self._need = 0
        self._discard: _Discard | None = None

    def reset(self) -> None:
        self._chunks, self._have, self._need, self._discard = [], 0, 0, None

    def feed(self, data: bytes) -> list[Packet]:
        """Every packet completed by ``data``, in order."""
        out: list[Packet] = []
        pos = 0
        if self._discard is not None:
            pos = self._discard.feed(data, 0)
            if self._discard.left:
                return out
            out.append(self._discard.result())
            self._discard = None
        elif self._chunks:
            self._chunks.append(data)
            self._have += len(data)
            if self._have < self._need:
                return []
            data = b"".join(self._chunks)
            self._chunks, self._have, self._need = [], 0, 0
        append = out.append
        v5 = self.v5
        n = len(data)
        while pos < n:
            # fixed header: type/flags byte and a 1-4 byte remaining length
            head = data[pos]
            i = pos + 1
            if i + 1 < n and data[i + 1] < 0x80:  # a remaining length of one or two bytes (most packets)
                b = data[i]
                if b < 0x80:
                    length, i = b, i + 1
                else:
                    length, i = (b & 0x7F) | (data[i + 1] << 7), i + 2
            else:
                length, shift = 0, 0
                while True:
                    if i >= n:
                        return self._keep(out, data, pos, n + 1)
                    b = data[i]
                    i += 1
                    length |= (b & 0x7F) << shift
                    if not b & 0x80:
                        break
                    shift += 7
                    if shift >= 28:
                        raise ProtocolError("remaining length longer than 4 bytes")
            if length > self.max_packet:
                if head >> 4 != PUBLISH:
                    raise ProtocolError(f"packet of {length} bytes exceeds the maximum {self.max_packet}")
                discard = _Discard(head, length, v5, self.prefix_bytes)
                pos = discard.feed(data, i)
                if discard.left:
                    self._discard = discard
                    return out
                append(discard.result())
                continue
            end = i + length
            if end > n:
                return self._keep(out, data, pos, end)
            if head >> 4 == PUBLISH:
                # hot path, inline: topic, packet id, (properties), payload
                qos = (head >> 1) & 3
                if qos == 3:
                    raise ProtocolError("PUBLISH with QoS 3")
                if i + 2 > end:
                    raise ProtocolError("PUBLISH too short for its topic length")
                p = i + 2 + ((data[i] << 8) | data[i + 1])
                mid = 0
                if qos:
                    if p + 2 > end:
                        raise ProtocolError("PUBLISH too short for its topic and packet id")
                    mid = (data[p] << 8) | data[p + 1]
                    if not mid:
                        raise ProtocolError("PUBLISH with packet id 0")
                    t = data[i + 2 : p]
                    p += 2
                else:
                    if p > end:
                        raise ProtocolError("PUBLISH too short for its topic")
                    t = data[i + 2 : p]
                props = None
                if v5:
                    if p < end and data[p] == 0:
                        p += 1
                    else:
                        props, p = _properties(data, p, end)
                try:
                    topic = t.decode()
                except UnicodeDecodeError:
                    topic = t.decode("utf-8", "replace")
                append(Publish(topic, data[p:end], qos, mid, bool(head & 1), bool(head & 8), props))
            else:
                append(self._control(head, data, i, end))
            pos = end
        return out

    def _keep(self, out: list[Packet], data: bytes, pos: int, need: int) -> list[Packet]:
        rest = data[pos:]
        self._chunks, self._have, self._need = [rest], len(rest), need - pos
        return out

    def _control(self, head: int, buf: bytes, p: int, end: int) -> Packet:
        kind, flags = head >> 4, head & 0x0F
        if flags != (2 if kind == PUBREL else 0):
            raise ProtocolError(f"packet type {kind} with reserved flags 0x{flags:x}")
        length = end - p
        v5 = self.v5
        if kind == CONNACK:
            if length < 2:
                raise ProtocolError("CONNACK too short")
            ack_flags, reason = buf[p], buf[p + 1]
            if ack_flags & 0xFE:
                raise ProtocolError("CONNACK with reserved flags set")
            props: dict[int, Any] = {}
            if v5:
                props, q = _properties(buf, p + 2, end)
            else:
                q = p + 2
            if q != end:
                raise ProtocolError("CONNACK has trailing bytes")
            return Connack(bool(ack_flags & 1), reason, props)
        if PUBACK <= kind <= PUBCOMP:
            if length < 2 or (not v5 and length != 2):
                raise ProtocolError("acknowledgement packet has the wrong length")
            mid = _u16(buf, p, end)
            reason = buf[p + 2] if length > 2 else 0
            if length > 3:
                _, q = _properties(buf, p + 3, end)
                if q != end:
                    raise ProtocolError("acknowledgement has trailing bytes")
            return Ack(kind, mid, reason)
        if kind in (SUBACK, UNSUBACK):
            mid = _u16(buf, p, end)
            q = p + 2
            if v5:
                _, q = _properties(buf, q, end)
            if kind == SUBACK and q >= end:
                raise ProtocolError("SUBACK without reason codes")
            return Suback(kind, mid, list(buf[q:end]))
        if kind == PINGRESP:
            if length:
                raise ProtocolError("PINGRESP with a payload")
            return Pingresp()
        if kind == DISCONNECT and v5:
            reason = buf[p] if length else 0
            props = {}
            if length > 1:
                props, q = _properties(buf, p + 1, end)
                if q != end:
                    raise ProtocolError("DISCONNECT has trailing bytes")
            return Disconnect(reason, props)
        raise ProtocolError(f"unexpected packet type {kind} from the server")


class _Discard:
    """One oversize PUBLISH being read and dropped chunk by chunk. Only its variable header (at most
    the 64 KiB of a topic plus a few bytes) is buffered; property bytes are skipped, the payload is
    hashed and its first ``keep`` bytes kept."""

    __slots__ = ("head", "header", "keep", "left", "mid", "prefix", "sha", "size", "skip", "topic", "v5")

    def __init__(self, head: int, length: int, v5: bool, keep: int) -> None:
        if (head >> 1) & 3 == 3:
            raise ProtocolError("PUBLISH with QoS 3")
        self.head, self.v5, self.keep = head, v5, keep
        self.left = length  # body bytes not yet read
        self.header: bytearray | None = bytearray()  # None once the variable header is parsed
        self.topic, self.mid, self.skip, self.size = "", 0, 0, 0
        self.prefix = bytearray()
        self.sha = hashlib.sha256()

    def feed(self, data: bytes, pos: int) -> int:
        """Consume this packet's bytes of ``data`` from ``pos``; the position after them."""
        end = min(len(data), pos + self.left)
        self.left -= end - pos
        if self.header is not None:
            self.header += data[pos:end]
            rest = self._parse_header()
            if rest < 0:
                return end
            pos = end - rest
        if self.skip:
            n = min(self.skip, end - pos)
            self.skip -= n
            pos += n
        if pos < end:
            chunk = data[pos:end]
            self.size += len(chunk)
            self.sha.update(chunk)
            if len(self.prefix) < self.keep:
                self.prefix += chunk[: self.keep - len(self.prefix)]
        return end

    def _parse_header(self) -> int:
        """Parse the buffered variable header: how many buffered bytes follow it, or -1 while it is
        incomplete (all of them came with the last feed: the header was incomplete before)."""
        buf = self.header
        assert buf is not None
        n = len(buf)
        if n < 2:
            return self._more()
        p = tend = 2 + ((buf[0] << 8) | buf[1])
        if (self.head >> 1) & 3:
            if n < p + 2:
                return self._more()
            self.mid = (buf[p] << 8) | buf[p + 1]
            if not self.mid:
                raise ProtocolError("PUBLISH with packet id 0")
            p += 2
        elif n < p:
            return self._more()
        t = bytes(buf[2:tend])
        if self.v5:
            if not any(b < 0x80 for b in buf[p : p + 4]):
                if n - p >= 4:
                    raise ProtocolError("variable byte integer longer than 4 bytes")
                return self._more()
            self.skip, p = _varint(buf, p, n)
        try:
            self.topic = t.decode()
        except UnicodeDecodeError:
            self.topic = t.decode("utf-8", "replace")
        self.header = None
        return n - p

    def _more(self) -> int:
        if not self.left:
            raise ProtocolError("oversize PUBLISH too short for its variable header")
        return -1

    def result(self) -> Oversized:
        if self.header is not None or self.skip:
            raise ProtocolError("oversize PUBLISH ends inside its header or properties")
        h = self.head
        return Oversized(
            self.topic,
            self.size,
            bytes(self.prefix),
            self.sha.hexdigest(),
            (h >> 1) & 3,
            self.mid,
            bool(h & 1),
            bool(h & 8),
        )


# -- encoding --------------------------------------------------------------------------------------
def _enc_varint(n: int) -> bytes:
    if not 0 <= n <= MAX_REMAINING:
        raise ValueError(f"{n} does not fit a variable byte integer")
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _enc_str(s: str | bytes) -> bytes:
    b = s.encode("utf-8") if isinstance(s, str) else s
    if len(b) > 0xFFFF:
        raise ValueError("string longer than 65535 bytes")
    return len(b).to_bytes(2, "big") + b


def _enc_props(props: dict[int, Any]) -> bytes:
    out = bytearray()
    for ident, value in props.items():
        kind = _PROPERTY_TYPES[ident]
        if kind == _PAIR:
            for k, v in value:
                out += _enc_varint(ident) + _enc_str(k) + _enc_str(v)
            continue
        out += _enc_varint(ident)
        if kind == _BYTE:
            out.append(value)
        elif kind == _U16:
            out += value.to_bytes(2, "big")
        elif kind == _U32:
            out += value.to_bytes(4, "big")
        elif kind == _VARINT:
            out += _enc_varint(value)
        else:
            out += _enc_str(value)
    return _enc_varint(len(out)) + bytes(out)


def _packet(head: int, body: bytes) -> bytes:
    return bytes([head]) + _enc_varint(len(body)) + body


def encode_connect(
    client_id: str,
    *,
    keepalive: int,
    v5: bool,
    clean_start: bool,
    username: str | None = None,
    password: str | None = None,
    session_expiry: int = 0,
    receive_maximum: int | None = None,
    maximum_packet_size: int | None = None,
) -> bytes:
    flags = 0x02 if clean_start else 0
    tail = _enc_str(client_id)
    if username is not None:
        flags |= 0x80
        tail += _enc_str(username)
        if password is not None:
            flags |= 0x40
            tail += _enc_str(password)
    body = _enc_str("MQTT") + bytes([5 if v5 else 4, flags]) + keepalive.to_bytes(2, "big")
    if v5:
        props: dict[int, Any] = {}
        if session_expiry:
            props[SESSION_EXPIRY_INTERVAL] = session_expiry
        if receive_maximum:
            props[RECEIVE_MAXIMUM] = receive_maximum
        if maximum_packet_size:
            props[MAXIMUM_PACKET_SIZE] = maximum_packet_size
        body += _enc_props(props)
    return _packet(CONNECT << 4, body + tail)


def subscription_options(
    qos: int, *, retain_handling: int = 0, no_local: bool = False, as_published: bool = False
) -> int:
    """The MQTT 5 subscription options byte (3.1.1 only uses the QoS bits)."""
    return qos | (no_local << 2) | (as_published << 3) | (retain_handling << 4)


def encode_subscribe(mid: int, filters: Sequence[tuple[str, int]], *, v5: bool) -> bytes:
    """SUBSCRIBE; ``filters`` are (topic filter, options byte) pairs (see :func:`subscription_options`)."""
    body = mid.to_bytes(2, "big") + (b"\x00" if v5 else b"")
    for topic, options in filters:
        body += _enc_str(topic) + bytes([options if v5 else options & 3])
    return _packet((SUBSCRIBE << 4) | 2, body)


_ACK: Final = struct.Struct(">BBH")


def encode_acks(kind: int, mids: Iterable[int]) -> bytes:
    """Consecutive PUBACK / PUBREC / PUBREL / PUBCOMP packets (reason 0, no properties) in one buffer."""
    head = (kind << 4) | (2 if kind == PUBREL else 0)
    pack = _ACK.pack
    return b"".join([pack(head, 2, m) for m in mids])


PINGREQ_PACKET: Final = b"\xc0\x00"
DISCONNECT_PACKET: Final = b"\xe0\x00"


def encode_publish(
    topic: str, payload: bytes, *, qos: int = 0, mid: int = 0, retain: bool = False, dup: bool = False, v5: bool
) -> bytes:
    head = (PUBLISH << 4) | (dup << 3) | (qos << 1) | int(retain)
    body = _enc_str(topic) + (mid.to_bytes(2, "big") if qos else b"") + (b"\x00" if v5 else b"") + payload
    return _packet(head, body)


def encode_connack(session_present: bool, reason: int, *, v5: bool, properties: dict[int, Any] | None = None) -> bytes:
    body = bytes([int(session_present), reason]) + (_enc_props(properties or {}) if v5 else b"")
    return _packet(CONNACK << 4, body)


def encode_suback(mid: int, reasons: Sequence[int], *, v5: bool) -> bytes:
    return _packet(SUBACK << 4, mid.to_bytes(2, "big") + (b"\x00" if v5 else b"") + bytes(reasons))
