"""A Sparkplug B payload -> readings and liveness (see ``ingest.decoding.sparkplug.rule``).

One :class:`SparkplugCodec` per topic (the decoder caches it with the topic's source), handed the
shared :class:`~ingest.decoding.sparkplug.state.SparkplugState` and
:class:`~ingest.decoding.sparkplug.state.Rebirths`.

- NBIRTH / DBIRTH: the metrics' names, aliases and datatypes are remembered (persistently, by the
  state); the birth's values are stored; the node / device goes online (a :class:`Bundle`).
- NDATA / DDATA: each metric is named by its alias (or its name) through the latest birth. A metric
  no birth names -> ``unknown_alias`` (the whole message, never a guessed name) and a rebirth request.
- NDEATH: with the ``bdSeq`` of the latest NBIRTH (or with none known) the node and every device
  born behind it go offline; a stale one (another ``bdSeq``: an older session's last will) changes
  nothing. DDEATH: the device goes offline.

Values: Int8/16/32/64 are read as the two's complement of their width from the unsigned protobuf
field (tahu #71: a negative Int8 arrives as 255, or sign-extended as 4294967295); UInt32 from
``int_value`` or ``long_value`` (sparkplug #102); integers become floats (as every number the pipeline
stores); DateTime is epoch milliseconds as a float; String, Text and UUID are strings; Boolean a bool.
``is_null`` metrics are absent from the reading. Per-metric timestamps (epoch ms) are kept: metrics
are grouped into one point per timestamp (a metric's timestamp of 0 is none: its message's applies;
a message's of 0 is none: the arrival time); ``is_historical`` ones go to points tagged
``historical=true``. Bytes, File, DataSet, Template, PropertySet and arrays are not stored: a data
message holding one is dead-lettered (``wrong_type``, naming the metric and type); in a birth such a
metric is remembered (its alias is known) but its value is not stored.

Field names: a metric name's ``/`` folders become ``.`` and any other character outside the field-name
allow-list ``_`` (``Node Control/Rebirth`` -> ``Node_Control.Rebirth``); a name that still fails the
allow-list, two names that map to one field, or a reserved name (``site``, ``historical``…) refuse the
birth (``invalid_name`` / ``reserved_name``). ``bdSeq`` is protocol bookkeeping, not stored.
"""

from __future__ import annotations

import re
import time
from typing import Any

from core.model import Bundle, FieldValue, Point, Reason, Rejected, StatusChange
from ingest.decoding.codecs import Source
from ingest.decoding.names import check_field_key, check_string_value
from ingest.decoding.senml import valid_unicode
from ingest.decoding.sparkplug.plan import DataPlan
from ingest.decoding.sparkplug.proto import DataType, payload_class
from ingest.decoding.sparkplug.seq import SeqTracker
from ingest.decoding.sparkplug.state import BirthRecord, MetricInfo, Rebirths, SparkplugState
from ingest.decoding.sparkplug.topic import MessageType, SparkplugTopic

HISTORICAL_TAG = "historical"
BD_SEQ = "bdSeq"
_NOT_FIELD = re.compile(r"[^A-Za-z0-9_.:-]")
_SIGNED_BITS = {DataType.INT8: 8, DataType.INT16: 16, DataType.INT32: 32, DataType.INT64: 64}
_UNSIGNED_BITS = {DataType.UINT8: 8, DataType.UINT16: 16, DataType.UINT32: 32, DataType.UINT64: 64}
_STRINGS = frozenset({DataType.STRING, DataType.TEXT, DataType.UUID})
STORED = frozenset(_SIGNED_BITS) | frozenset(_UNSIGNED_BITS) | _STRINGS
STORED |= {DataType.FLOAT, DataType.DOUBLE, DataType.BOOLEAN, DataType.DATETIME}
_NAMES = {int(t): t.name for t in DataType}


def field_name(metric_name: str) -> str:
    """The field a metric is stored as (module docstring); Rejected when it cannot be one."""
    name = _NOT_FIELD.sub("_", metric_name.replace("/", "."))
    check_field_key(name)
    if name == HISTORICAL_TAG:
        raise Rejected(Reason.RESERVED_NAME, f"field name {name!r} is reserved (it is a tag the pipeline writes)")
    return name


def _type_name(datatype: int) -> str:
    return _NAMES.get(datatype, f"datatype {datatype}")


def value_of(m: Any, datatype: int, name: str) -> FieldValue:
    """The stored value of metric ``m`` (not null) of ``datatype``; Rejected when it has none."""
    which = m.WhichOneof("value")
    bits = _SIGNED_BITS.get(datatype)  # type: ignore[call-overload]
    if bits is not None or datatype in _UNSIGNED_BITS:
        if which == "int_value":
            raw = m.int_value
        elif which == "long_value":
            raw = m.long_value
        else:
            raise Rejected(Reason.WRONG_TYPE, f"metric {name[:40]!r} ({_type_name(datatype)}) has no integer value")
        if bits is not None:
            raw &= (1 << bits) - 1
            if raw >> (bits - 1):
                raw -= 1 << bits
        elif raw >> _UNSIGNED_BITS[datatype]:  # type: ignore[index]
            raise Rejected(Reason.WRONG_TYPE, f"metric {name[:40]!r}: {raw} is not a {_type_name(datatype)}")
        return float(raw)
    if datatype == DataType.DOUBLE or datatype == DataType.FLOAT:
        if which == "double_value":
            f = m.double_value
        elif which == "float_value":
            f = m.float_value
        else:
            raise Rejected(Reason.WRONG_TYPE, f"metric {name[:40]!r} ({_type_name(datatype)}) has no float value")
        if f - f != 0.0:
            raise Rejected(Reason.NON_FINITE, f"metric {name[:40]!r} is not finite")
        return float(f)
    if datatype == DataType.BOOLEAN:
        if which != "boolean_value":
            raise Rejected(Reason.WRONG_TYPE, f"metric {name[:40]!r} (Boolean) has no boolean value")
        return bool(m.boolean_value)
    if datatype in _STRINGS:
        if which != "string_value":
            raise Rejected(Reason.WRONG_TYPE, f"metric {name[:40]!r} ({_type_name(datatype)}) has no string value")
        s: str = m.string_value
        if not s.isascii() and not valid_unicode(s):
            raise Rejected(Reason.INVALID_UTF8, f"metric {name[:40]!r} has a lone surrogate")
        if not s.isprintable():
            check_string_value(name, s)
        return s
    if datatype == DataType.DATETIME:
        if which != "long_value":
            raise Rejected(Reason.WRONG_TYPE, f"metric {name[:40]!r} (DateTime) has no long value")
        return float(m.long_value)
    raise Rejected(
        Reason.WRONG_TYPE, f"metric {name[:40]!r} is a {_type_name(datatype)}: the pipeline does not store that type"
    )


class SparkplugCodec:
    """The codec of one Sparkplug topic (its type, node and device fixed)."""

    name = "sparkplug_b"
    kinds: frozenset[Any] = frozenset()  # not claimed by first byte: set on the topic's Source
    first_bytes: frozenset[int] = frozenset()

    def __init__(
        self,
        topic: SparkplugTopic,
        state: SparkplugState,
        rebirths: Rebirths,
        seqs: SeqTracker | None = None,
        *,
        fast_path: bool = True,
    ) -> None:
        self.topic = topic
        self.state = state
        self.rebirths = rebirths
        self.seqs = seqs  # None: this process does not see the node's whole stream (--workers N)
        self.fast_path = fast_path  # False: every data message by the general path (the property test's)
        self._plan: DataPlan | None = None  # of the latest birth a data message was decoded under
        self.node_id = topic.node_id
        self.device_key = None if topic.device is None else topic.device_id
        self._parse = payload_class().FromString  # the first Sparkplug topic builds the class
        self._is_data = topic.type is MessageType.NDATA or topic.type is MessageType.DDATA  # once, not per message

    def decode(self, source: Source, payload: bytes, now_ns: int, latest_ns: int) -> list[Point] | Bundle:
        try:
            msg = self._parse(payload)
        except Exception as e:  # google.protobuf.message.DecodeError, and anything its parser raises
            raise Rejected(Reason.WRONG_TYPE, f"not a Sparkplug B payload ({type(e).__name__})") from None
        if self._is_data:
            if self.seqs is not None and msg.HasField("seq"):
                self.seqs.seen(self.topic.group, self.topic.edge, msg.seq)
            return self._data(source, msg, now_ns, latest_ns)
        t = self.topic.type
        if self.seqs is not None and t is not MessageType.NDEATH and msg.HasField("seq"):
            if t is MessageType.NBIRTH:
                self.seqs.born(self.topic.group, self.topic.edge, msg.seq)
            else:
                self.seqs.seen(self.topic.group, self.topic.edge, msg.seq)
        if t is MessageType.NBIRTH or t is MessageType.DBIRTH:
            return self._birth(source, msg, now_ns, latest_ns)
        if t is MessageType.NDEATH:
            return self._node_death(msg, now_ns)
        return Bundle([], [StatusChange(source.device_id, False, _at(msg, now_ns))])  # DDEATH

    def _ts(self, ms: int, now_ns: int, latest_ns: int) -> int:
        if not ms:
            return now_ns
        ts = ms * 1_000_000
        if ts > latest_ns:
            raise Rejected(Reason.FUTURE_TIMESTAMP, f"timestamp is {(ts - now_ns) / 1e9:.0f}s after arrival")
        return ts

    def _points(
        self, source: Source, values: list[tuple[str, FieldValue, int, bool]], now_ns: int, latest_ns: int
    ) -> list[Point]:
        by_time: dict[tuple[int, bool], dict[str, FieldValue]] = {}
        for name, value, ms, historical in values:
            by_time.setdefault((ms, historical), {})[name] = value
        points = []
        for (ms, historical), fields in by_time.items():
            if len(fields) > source.max_fields:
                raise Rejected(Reason.TOO_MANY_FIELDS, f"{len(fields)} fields in one point (limit {source.max_fields})")
            tags = {HISTORICAL_TAG: "true"} if historical else {}
            points.append(Point(source.measurement, source.device_id, fields, self._ts(ms, now_ns, latest_ns), tags))
        return points

    def _data(self, source: Source, msg: Any, now_ns: int, latest_ns: int) -> list[Point] | Bundle:
        record = self.state.birth(self.node_id, self.device_key)
        default_ms: int = msg.timestamp  # 0 when it has none
        if record is not None and self.fast_path:
            plan = self._plan
            if plan is None or plan.record is not record:
                plan = self._plan = DataPlan(record)
            fields = plan.fields(msg.metrics, default_ms, source.max_fields)
            if fields is not None:
                ts = self._ts(default_ms, now_ns, latest_ns)
                return [Point(source.measurement, source.device_id, fields, ts, {})]
        return self._data_general(source, msg, record, default_ms, now_ns, latest_ns)

    def _data_general(
        self, source: Source, msg: Any, record: BirthRecord | None, default_ms: int, now_ns: int, latest_ns: int
    ) -> list[Point] | Bundle:
        values: list[tuple[str, FieldValue, int, bool]] = []
        for m in msg.metrics:
            info = None
            if record is not None:
                if m.HasField("alias"):
                    info = record.aliases.get(m.alias)
                elif m.name:
                    info = record.names.get(m.name)
            if info is None:
                self.rebirths.request(self.topic.group, self.topic.edge)
                what = f"alias {m.alias}" if m.HasField("alias") else f"metric {m.name[:40]!r}"
                why = "no birth is known for it" if record is None else "its birth does not declare it"
                raise Rejected(Reason.UNKNOWN_ALIAS, f"{what}: {why} (a rebirth was requested)")
            if m.is_null:
                continue
            value = value_of(m, info.datatype, info.field)
            ms = m.timestamp or default_ms
            values.append((info.field, value, ms, m.is_historical))
        if not values:
            return Bundle([], [])
        return self._points(source, values, now_ns, latest_ns)

    def _birth(self, source: Source, msg: Any, now_ns: int, latest_ns: int) -> Bundle:
        aliases: dict[int, MetricInfo] = {}
        names: dict[str, MetricInfo] = {}
        fields: set[str] = set()
        bd_seq: int | None = None
        default_ms = msg.timestamp
        values: list[tuple[str, FieldValue, int, bool]] = []
        for m in msg.metrics:
            if self.device_key is None and m.name == BD_SEQ:
                which = m.WhichOneof("value")
                bd_seq = m.long_value if which == "long_value" else m.int_value if which == "int_value" else None
                continue
            if not m.name:
                raise Rejected(Reason.INVALID_NAME, "a birth metric has no name")
            field = field_name(m.name)
            if field in fields:
                raise Rejected(Reason.INVALID_NAME, f"two birth metrics are stored as field {field[:40]!r}")
            fields.add(field)
            info = MetricInfo(field, m.datatype)
            names[m.name] = info
            if m.HasField("alias"):
                if m.alias in aliases:
                    raise Rejected(Reason.INVALID_NAME, f"alias {m.alias} is declared twice")
                aliases[m.alias] = info
            if m.is_null or m.datatype not in STORED:
                continue
            ms = m.timestamp or default_ms
            values.append((field, value_of(m, m.datatype, field), ms, m.is_historical))
        points = self._points(source, values, now_ns, latest_ns)
        at = default_ms / 1000 if default_ms else time.time()  # the node's clock orders its births
        self.state.born(self.node_id, self.device_key, BirthRecord(aliases, names, bd_seq), at)
        return Bundle(points, [StatusChange(source.device_id, True, _at(msg, now_ns))])

    def _node_death(self, msg: Any, now_ns: int) -> Bundle:
        bd_seq = None
        for m in msg.metrics:
            if m.name == BD_SEQ:
                which = m.WhichOneof("value")
                bd_seq = m.long_value if which == "long_value" else m.int_value if which == "int_value" else None
        record = self.state.birth(self.node_id, None)
        if record is not None and record.bd_seq is not None and bd_seq is not None and bd_seq != record.bd_seq:
            return Bundle([], [])  # an older session's will, delivered after the node was born again
        at = _at(msg, now_ns)
        ids = [self.node_id, *self.state.devices(self.node_id)]
        return Bundle([], [StatusChange(i, False, at) for i in ids])


def _at(msg: Any, now_ns: int) -> float:
    """A liveness change's time: now (the payload's clock may be wrong; the registry orders by it)."""
    return now_ns / 1e9
