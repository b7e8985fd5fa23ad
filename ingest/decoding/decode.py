"""One MQTT message (topic, payload bytes, arrival time) -> Decoded, or Rejected. Pure, no I/O.

This runs once per message on the daemon's hot path: reading payloads go to the codec claiming
their first byte (``ingest.decoding.codecs``; registered in ``CODECS`` below: the JSON object codec here,
SenML JSON in ``ingest.decoding.senml``), which parses with ``orjson`` first (~8x faster) and falls back to
the stdlib decoder, the reference for every rejection reason; documents and status take one
``json.loads`` with a decoder built in ``Decoder.__init__``. Type checks by ``type(x) is``, topics
cached after first sight.

Rules (CONTRACT.md, "Payloads"):

- topic ``{root}/{device_id}/{kind}``; device_id 1-64 of ``[A-Za-z0-9_.:-]``.
- payload larger than ``max_payload_bytes`` -> OVERSIZE, before anything else is looked at;
  strict UTF-8 (no BOM, no UTF-16) then JSON; ``NaN``/``Infinity`` or a number too large for
  a double -> NON_FINITE.
- telemetry / metrics: a JSON object -> one Point. ``ts`` (see ingest.decoding.timestamps) is optional;
  every other key is a field: numbers become float (always, so a field never flips between
  int and float in InfluxDB), bools and strings stay. Null, objects and arrays -> WRONG_TYPE;
  a field name outside ingest.decoding.names' allow-list -> INVALID_NAME, one named like a tag
  (``device_id``, ``site``, ``unit``…) or ``time`` -> RESERVED_NAME; a string holding a
  control character other than tab -> WRONG_TYPE, an escaped lone surrogate -> INVALID_UTF8.
  More than ``max_fields`` fields (or, in a SenML pack, ``max_units`` distinct units)
  -> TOO_MANY_FIELDS. A JSON array is SenML (ingest.decoding.senml). With a ``guard``
  (ingest.decoding.cardinality), a device over its budget of new field names or units
  -> CARDINALITY_LIMIT (the only stateful rule).
- events: as above plus ``level`` (required, one of LEVELS, case-insensitive, stored as the
  lower-case tag ``level``), ``code`` (string; an integer is turned into its decimal string)
  and ``message`` (string). With nothing but a level the point gets the field ``count`` = 1.0.
- config / firmware / maintenance: a JSON object -> Document whose key is the first 32 hex
  digits of sha256(topic + NUL + payload), so a redelivered message has the same key.
  Documents must be storable in MongoDB: integers within 64 bits, no key starting with ``$``
  or holding NUL, nesting at most MAX_DOCUMENT_DEPTH -> else WRONG_TYPE.
- status: ``online`` / ``offline`` (trimmed, any case), the same as a JSON string, or
  ``{"status": "online"|"offline", "ts"?}`` -> StatusChange; anything else -> WRONG_TYPE.
- a timestamp more than ``future_window_s`` after arrival -> FUTURE_TIMESTAMP.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from core.model import (
    COLLECTIONS,
    MEASUREMENTS,
    Bundle,
    Decoded,
    Document,
    FieldValue,
    Kind,
    Point,
    Reason,
    Rejected,
    StatusChange,
)
from ingest.decoding.cardinality import CardinalityGuard
from ingest.decoding.codecs import (
    WHITESPACE,
    Codec,
    NonFinite,
    Source,
    finite_float,
    first_byte,
    int64,
    json_loads,
    parse_json,
    parse_json_text,
    reject_constant,
)
from ingest.decoding.names import check_field_key, check_string_value
from ingest.decoding.senml import SenmlJson, valid_unicode
from ingest.decoding.timestamps import BadTimestamp, to_ns
from ingest.decoding.topics import ContractTopics, Limits, Topics

LEVELS = frozenset({"debug", "info", "warning", "error", "critical"})
MAX_DOCUMENT_DEPTH = 64
_TOPIC_CACHE_MAX = 65536
_MISSING: Any = object()
_TS_ONLY = frozenset({"ts"})
_Topic = tuple[Source, dict[int, Codec] | None]  # the topic's source, its codecs by first payload byte
_EVENT_SKIP = frozenset({"ts", "level", "code", "message"})
_GOOD_KEYS_MAX = 65536
_good_keys: set[str] = set()  # field names already checked (they repeat on every message)
_NS_MIN = 100_000_000_000_000_000  # an integer ts at or above this is already nanoseconds
_MS_MIN, _MS_END = 100_000_000_000, 100_000_000_000_000  # an integer ts in this range is milliseconds


def parse_topic(topic: str, root: str = "devices") -> tuple[str, Kind]:
    """``{root}/{device_id}/{kind}`` -> (device_id, kind); Rejected(BAD_TOPIC / UNKNOWN_KIND)
    (the built-in contract's rule, :class:`ingest.decoding.topics.ContractTopics`)."""
    return ContractTopics(root).parse(topic)


def _fields(obj: dict[str, Any], skip: frozenset[str], max_fields: int) -> dict[str, FieldValue]:
    """The fields of ``obj``: every key but ``skip``, checked (see ``_own_fields``)."""
    return _own_fields({k: v for k, v in obj.items() if k not in skip}, max_fields)


def _own_fields(obj: dict[str, Any], max_fields: int) -> dict[str, FieldValue]:
    """``_fields`` for a freshly parsed object without ``ts``, checked and converted in place
    (integers become floats): the telemetry hot path builds no second dict."""
    if len(obj) > max_fields:
        raise Rejected(Reason.TOO_MANY_FIELDS, f"{len(obj)} fields in one message (limit {max_fields})")
    good = _good_keys
    for k, v in obj.items():
        if k not in good:
            check_field_key(k)
            if len(good) >= _GOOD_KEYS_MAX:
                good.clear()
            good.add(k)
        tv = type(v)
        if tv is float:
            if v - v != 0.0:
                raise Rejected(Reason.NON_FINITE, f"field {k[:32]!r} is not finite")
        elif tv is int:
            try:
                obj[k] = float(v)  # an existing key: safe while iterating
            except OverflowError:
                raise Rejected(Reason.NON_FINITE, f"field {k[:32]!r} is too large") from None
        elif tv is str:
            if not v.isascii() and not valid_unicode(v):
                raise Rejected(Reason.INVALID_UTF8, f"field {k[:32]!r} has a lone surrogate")
            if not v.isprintable():
                check_string_value(k, v)
        elif tv is not bool:
            what = "null" if v is None else "an object" if tv is dict else "an array"
            raise Rejected(Reason.WRONG_TYPE, f"field {k[:32]!r} is {what}; fields are numbers, bools, strings")
    return obj


def _check_document(body: dict[str, Any]) -> None:
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DOCUMENT_DEPTH:
            raise Rejected(Reason.WRONG_TYPE, f"document nested deeper than {MAX_DOCUMENT_DEPTH}")
        if type(node) is dict:
            for k, v in node.items():
                if k.startswith("$") or "\x00" in k:
                    raise Rejected(Reason.WRONG_TYPE, f"document key {k[:32]!r} not storable")
                if not k.isascii() and not valid_unicode(k):
                    raise Rejected(Reason.INVALID_UTF8, "document key has a lone surrogate")
                if type(v) is dict or type(v) is list:
                    stack.append((v, depth + 1))
                elif type(v) is str and not v.isascii() and not valid_unicode(v):
                    raise Rejected(Reason.INVALID_UTF8, "document string has a lone surrogate")
        else:
            for v in node:
                if type(v) is dict or type(v) is list:
                    stack.append((v, depth + 1))
                elif type(v) is str and not v.isascii() and not valid_unicode(v):
                    raise Rejected(Reason.INVALID_UTF8, "document string has a lone surrogate")


def _timestamp(obj: dict[str, Any], now_ns: int, latest_ns: int) -> int:
    raw = obj.get("ts", _MISSING)
    if raw is _MISSING:
        return now_ns
    return _ts_value(raw, now_ns, latest_ns)


def _ts_value(raw: object, now_ns: int, latest_ns: int) -> int:
    try:
        ts = to_ns(raw)
    except BadTimestamp as e:
        raise Rejected(Reason.BAD_TIMESTAMP, str(e)) from None
    if ts > latest_ns:
        raise Rejected(Reason.FUTURE_TIMESTAMP, f"ts is {(ts - now_ns) / 1e9:.0f}s after arrival")
    return ts


class Decoder:
    """Decodes and validates one message at a time. Holds only precomputed settings and a
    bounded cache of parsed topics; safe to share within one thread."""

    def __init__(
        self,
        *,
        topics: Topics | None = None,
        topic_root: str = "devices",
        max_payload_bytes: int = 256 * 1024,
        future_window_s: float = 300.0,
        codecs: Sequence[Codec] = (),
        max_fields: int = 256,
        max_units: int = 16,
        guard: CardinalityGuard | None = None,
        fast_json: bool = True,
    ) -> None:
        codecs = codecs or CODECS
        self.topics = topics or Topics.contract(topic_root, Limits(max_fields, max_units, fast_json))
        self.max_fields = max_fields
        self.max_units = max_units
        self.guard = guard
        self.max_payload_bytes = max_payload_bytes
        self.future_window_ns = int(future_window_s * 1e9)
        self._topics: dict[str, _Topic] = {}
        self._loads = json_loads()
        self.fast_json = fast_json
        self._loads_document = json.JSONDecoder(
            parse_constant=reject_constant, parse_float=finite_float, parse_int=int64
        ).decode
        self._claims: dict[Kind, dict[int, Codec]] = {}  # kind -> first payload byte -> codec
        for codec in codecs:
            for kind in codec.kinds:
                claims = self._claims.setdefault(kind, {})
                for b in codec.first_bytes:
                    if b in claims:
                        raise ValueError(f"codecs {claims[b].name} and {codec.name} both claim {b:#x}")
                    claims[b] = codec

    def decode(self, topic: str, payload: bytes, now_ns: int) -> Decoded:
        """Decode one message received at ``now_ns``. Raises Rejected(reason, detail), only."""
        try:
            return self.decode_unguarded(topic, payload, now_ns)
        except Rejected:
            raise
        except Exception as e:  # last resort: a bug here must dead-letter, not kill the daemon
            raise Rejected(Reason.WRONG_TYPE, f"undecodable ({type(e).__name__})") from e

    def decode_unguarded(self, topic: str, payload: bytes, now_ns: int) -> Decoded:
        """``decode`` without the last-resort guard (tests use it to prove the guard idle)."""
        info = self._topics.get(topic)
        if info is None:
            source = self.topics.source(topic)
            info = (source, self._claims.get(source.kind) if source.codec is None else None)
            if len(self._topics) >= _TOPIC_CACHE_MAX:
                self._topics.clear()
            self._topics[topic] = info
        source, claims = info
        if len(payload) > self.max_payload_bytes:
            raise Rejected(Reason.OVERSIZE, f"{len(payload)} bytes > limit {self.max_payload_bytes}")
        if claims is not None:
            first = payload[0] if payload else -1
            codec = claims.get(first if first not in WHITESPACE else first_byte(payload))
            if codec is not None:
                points = codec.decode(source, payload, now_ns, now_ns + self.future_window_ns)
                if self.guard is not None:
                    self.guard.admit(source.device_id, points, now_ns)
                return points
        elif source.codec is not None:  # the topic's rule chose the format (a mapping, Sparkplug B)
            decoded = source.codec.decode(source, payload, now_ns, now_ns + self.future_window_ns)
            if self.guard is not None:
                if type(decoded) is list:
                    self.guard.admit(source.device_id, decoded, now_ns)
                elif type(decoded) is Bundle and decoded.points:
                    self.guard.admit(source.device_id, decoded.points, now_ns)
            return decoded
        device_id, kind = source.device_id, source.kind
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as e:
            raise Rejected(Reason.INVALID_UTF8, f"invalid UTF-8 at byte {e.start}") from None
        if kind is Kind.STATUS:
            return self._status(device_id, text, now_ns)
        document = kind in COLLECTIONS
        obj = parse_json_text(text, self._loads_document if document else self._loads)
        if document:
            if type(obj) is not dict:
                raise Rejected(Reason.WRONG_TYPE, f"{kind} payload must be a JSON object")
            _check_document(obj)
            key = hashlib.sha256(topic.encode() + b"\0" + payload).hexdigest()[:32]
            return Document(COLLECTIONS[kind], device_id, key, obj, now_ns / 1e9)
        raise Rejected(  # a reading payload no codec claims
            Reason.WRONG_TYPE,
            f"{kind} payload must be a JSON object" + (" or a SenML array" if kind is not Kind.EVENTS else ""),
        )

    def _ts(self, obj: dict[str, Any], now_ns: int) -> int:
        return _timestamp(obj, now_ns, now_ns + self.future_window_ns)

    def _status(self, device_id: str, text: str, now_ns: int) -> StatusChange:
        word = text.strip().lower()
        if word in ("online", "offline"):
            return StatusChange(device_id, word == "online", now_ns / 1e9)
        usage = 'status must be \'online\', \'offline\' or {"status": "online"|"offline"}'
        try:
            obj = self._loads(text)
        except (ValueError, RecursionError, NonFinite):
            raise Rejected(Reason.WRONG_TYPE, usage) from None
        if type(obj) is dict:
            status = obj.get("status")
        elif type(obj) is str:
            status, obj = obj, {}
        else:
            raise Rejected(Reason.WRONG_TYPE, usage)
        if type(status) is not str or status.strip().lower() not in ("online", "offline"):
            raise Rejected(Reason.WRONG_TYPE, usage)
        return StatusChange(device_id, status.strip().lower() == "online", self._ts(obj, now_ns) / 1e9)


class JsonObject:
    """A JSON object: ``ts`` plus fields (telemetry, metrics), or an event (events)."""

    name = "json"
    kinds = frozenset({Kind.TELEMETRY, Kind.METRICS, Kind.EVENTS})
    first_bytes = frozenset(b"{")

    def __init__(self) -> None:
        self._loads = json_loads()

    def decode(self, source: Source, payload: bytes, now_ns: int, latest_ns: int) -> list[Point]:
        obj = parse_json(payload, self._loads, source.fast_json)
        if type(obj) is not dict:  # "{" was only a hint: the parse decides
            raise Rejected(Reason.WRONG_TYPE, f"{source.kind} payload must be a JSON object")
        if source.kind is Kind.EVENTS:
            return [self._event(source.device_id, obj, now_ns, latest_ns, source.max_fields)]
        raw = obj.pop("ts", _MISSING)  # obj is this call's own: it becomes the fields
        fields = _own_fields(obj, source.max_fields)
        if not fields:
            raise Rejected(Reason.NO_FIELDS, "no fields besides 'ts'")
        if raw is _MISSING:
            ts = now_ns
        elif type(raw) is int and _NS_MIN <= raw <= latest_ns:  # nanoseconds, not in the future
            ts = raw
        elif type(raw) is int and _MS_MIN <= raw < _MS_END and raw * 1_000_000 <= latest_ns:  # as to_ns reads ms
            ts = raw * 1_000_000
        else:
            ts = _ts_value(raw, now_ns, latest_ns)
        return [Point(source.measurement, source.device_id, fields, ts, {})]

    def _event(self, device_id: str, obj: dict[str, Any], now_ns: int, latest_ns: int, max_fields: int) -> Point:
        level = obj.get("level")
        if type(level) is not str or level.lower() not in LEVELS:
            got = "missing" if level is None else repr(level)[:32]
            raise Rejected(Reason.WRONG_TYPE, f"event level {got}; must be one of {', '.join(sorted(LEVELS))}")
        fields = _fields(obj, _EVENT_SKIP, max_fields)
        code = obj.get("code", _MISSING)
        if code is not _MISSING:
            if type(code) is int:
                code = str(code)
            elif type(code) is not str:
                raise Rejected(Reason.WRONG_TYPE, "event code must be a string")
            fields["code"] = code
        message = obj.get("message", _MISSING)
        if message is not _MISSING:
            if type(message) is not str:
                raise Rejected(Reason.WRONG_TYPE, "event message must be a string")
            fields["message"] = message
        for name, s in (("code", code), ("message", message)):
            if type(s) is str:
                if not s.isascii() and not valid_unicode(s):
                    raise Rejected(Reason.INVALID_UTF8, "event text has a lone surrogate")
                check_string_value(name, s)
        if not fields:
            fields["count"] = 1.0
        return Point(
            MEASUREMENTS[Kind.EVENTS],
            device_id,
            fields,
            _timestamp(obj, now_ns, latest_ns),
            {"level": level.lower()},
        )


CODECS: tuple[Codec, ...] = (JsonObject(), SenmlJson())
"""The reading payload formats, in one place: a new format is one module and one entry here."""
