"""The fast path of a Sparkplug data message: a birth compiled into a per-alias plan.

A data message names its metrics by alias; the birth that declared them fixed each one's field (its
name already checked against the allow-list when the birth was accepted) and datatype. A
:class:`DataPlan` holds, per alias and per name, the field and how to read the value of that datatype,
so the common message (every metric born and scalar, not null, not historical, no timestamp of its
own other than the message's, each value in the field its datatype reads from, finite, printable) becomes
one point's fields with little Python per metric.

:meth:`DataPlan.fields` only answers for that case: anything else (an unknown alias, a null, a
historical metric or one timed other than its message, a value in a field its datatype does not read, a value out of
range, a non-finite number, a string with a control character or lone surrogate, too many fields, no
metrics) returns None and the codec decodes the message by its general path
(:meth:`~ingest.decoding.sparkplug.codec.SparkplugCodec.decode`), which says what is wrong. The two
paths are held to the same points and dead letters by a property test (tests/test_sparkplug_fastpath.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from core.model import FieldValue
from core.sparkplug import BirthRecord, MetricInfo
from ingest.decoding.senml import valid_unicode
from ingest.decoding.sparkplug.proto import DataType

# how a datatype's value is read (the second item of a plan entry; the third is its parameter),
# ordered so that ranges of them share a branch
_DOUBLE = 0  # Double: double_value (float_value accepted too)
_FLOAT = 1  # Float: float_value (double_value accepted too)
_SIGNED = 2  # Int8…Int64: two's complement of the width (the parameter) from int_value or long_value
_UNSIGNED = 3  # UInt8…UInt64: from int_value or long_value, within the width (the parameter)
_BOOL = 4
_STRING = 5  # String, Text, UUID
_DATETIME = 6  # epoch ms from long_value

_KINDS: dict[int, tuple[int, Any]] = {
    DataType.DOUBLE: (_DOUBLE, None),
    DataType.FLOAT: (_FLOAT, None),
    DataType.INT8: (_SIGNED, 8),
    DataType.INT16: (_SIGNED, 16),
    DataType.INT32: (_SIGNED, 32),
    DataType.INT64: (_SIGNED, 64),
    DataType.UINT8: (_UNSIGNED, 8),
    DataType.UINT16: (_UNSIGNED, 16),
    DataType.UINT32: (_UNSIGNED, 32),
    DataType.UINT64: (_UNSIGNED, 64),
    DataType.BOOLEAN: (_BOOL, None),
    DataType.STRING: (_STRING, None),
    DataType.TEXT: (_STRING, None),
    DataType.UUID: (_STRING, None),
    DataType.DATETIME: (_DATETIME, None),
}
_INTS = ("int_value", "long_value")

Entry = tuple[str, int, Any]  # field, how to read (_DOUBLE…), its parameter


def _entries(metrics: Iterable[tuple[Any, MetricInfo]]) -> dict[Any, Entry]:
    """The entries of the metrics whose datatype the pipeline stores (others stay out: the general path
    dead-letters them)."""
    out: dict[Any, Entry] = {}
    for key, info in metrics:
        kind = _KINDS.get(info.datatype)
        if kind is not None:
            out[key] = (info.field, kind[0], kind[1])
    return out


class DataPlan:
    """The fast path for data messages under one birth (module docstring). Immutable once built."""

    __slots__ = ("by_alias", "by_name", "record")

    def __init__(self, record: BirthRecord) -> None:
        self.record = record  # the birth it was compiled from (the codec rebuilds on another one)
        self.by_alias = _entries(record.aliases.items())
        self.by_name = _entries(record.names.items())

    def fields(self, metrics: Iterable[Any], default_ms: int, max_fields: int) -> dict[str, FieldValue] | None:
        """One point's fields from the metrics of a data message whose timestamp is ``default_ms``
        (0: none), or None when the message is not the fast path's case (module docstring)."""
        by_alias, by_name = self.by_alias, self.by_name
        fields: dict[str, FieldValue] = {}
        for m in metrics:
            a = m.alias
            if a:
                e = by_alias.get(a)
            elif m.HasField("alias"):
                e = by_alias.get(0)
            else:
                e = by_name.get(m.name)
            if e is None or m.is_null or m.is_historical:
                return None
            t = m.timestamp
            if t and t != default_ms:  # a point of its own
                return None
            field, kind, p = e
            if kind <= _FLOAT:
                f = m.double_value if kind == _DOUBLE else m.float_value
                if not f:  # 0.0 (or -0.0) is also what an unset field reads as: which one is set?
                    w = m.WhichOneof("value")
                    if w == "double_value":
                        f = m.double_value
                    elif w == "float_value":
                        f = m.float_value
                    else:
                        return None
                if f - f != 0.0:  # NaN, ±inf
                    return None
                fields[field] = f
            elif kind <= _UNSIGNED:
                raw = m.long_value or m.int_value
                if not raw and m.WhichOneof("value") not in _INTS:
                    return None
                if kind == _SIGNED:
                    raw &= (1 << p) - 1
                    if raw >> (p - 1):
                        raw -= 1 << p
                elif raw >> p:
                    return None
                fields[field] = float(raw)
            elif kind == _BOOL:
                b = m.boolean_value
                if not b and m.WhichOneof("value") != "boolean_value":
                    return None
                fields[field] = b
            elif kind == _STRING:
                s = m.string_value
                if not s and m.WhichOneof("value") != "string_value":
                    return None
                if not s.isascii() and not valid_unicode(s):
                    return None
                if not s.isprintable():  # the general path decides what a control character costs
                    return None
                fields[field] = s
            else:  # _DATETIME
                raw = m.long_value
                if not raw and m.WhichOneof("value") != "long_value":
                    return None
                fields[field] = float(raw)
        if not fields or len(fields) > max_fields:
            return None
        return fields
