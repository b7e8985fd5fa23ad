"""Building Sparkplug B payloads: the host's rebirth command, the simulator's messages, tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ingest.decoding.sparkplug.proto import DataType, payload_class

REBIRTH = "Node Control/Rebirth"
_INT_FIELD = {DataType.INT8: 8, DataType.INT16: 16, DataType.INT32: 32, DataType.UINT8: 0, DataType.UINT16: 0}
_INT_FIELD[DataType.UINT32] = 0


@dataclass(frozen=True, slots=True)
class MetricValue:
    """One metric to send: a name (births), an alias (births and data), its datatype and value."""

    datatype: DataType
    value: float | int | bool | str | None  # None: is_null
    name: str | None = None
    alias: int | None = None
    timestamp_ms: int | None = None
    historical: bool = False


def _fill(m: Any, mv: MetricValue) -> None:
    if mv.name is not None:
        m.name = mv.name
    if mv.alias is not None:
        m.alias = mv.alias
    if mv.timestamp_ms is not None:
        m.timestamp = mv.timestamp_ms
    m.datatype = int(mv.datatype)
    if mv.historical:
        m.is_historical = True
    v = mv.value
    if v is None:
        m.is_null = True
        return
    t = mv.datatype
    if t in _INT_FIELD:  # two's complement of the type's width in the unsigned field (spec 6.4.16)
        bits = _INT_FIELD[t]
        m.int_value = int(v) + (1 << bits) if bits and int(v) < 0 else int(v)
    elif t in (DataType.INT64, DataType.UINT64, DataType.DATETIME):
        m.long_value = int(v) + (1 << 64) if int(v) < 0 else int(v)
    elif t is DataType.FLOAT:
        m.float_value = float(v)
    elif t is DataType.DOUBLE:
        m.double_value = float(v)
    elif t is DataType.BOOLEAN:
        m.boolean_value = bool(v)
    elif t in (DataType.STRING, DataType.TEXT, DataType.UUID):
        m.string_value = str(v)
    else:
        raise ValueError(f"cannot encode a {t.name} value")


def encode(metrics: list[MetricValue], *, seq: int | None = None, timestamp_ms: int | None = None) -> bytes:
    p = payload_class()()
    if timestamp_ms is not None:
        p.timestamp = timestamp_ms
    if seq is not None:
        p.seq = seq
    for mv in metrics:
        _fill(p.metrics.add(), mv)
    return bytes(p.SerializeToString())


def rebirth_command(timestamp_ms: int) -> bytes:
    """The ``NCMD`` payload asking an edge node to publish its births again."""
    return encode([MetricValue(DataType.BOOLEAN, True, name=REBIRTH)], timestamp_ms=timestamp_ms)


def requests_rebirth(payload: bytes) -> bool:
    """Whether an ``NCMD`` payload asks for a rebirth (``Node Control/Rebirth`` = true)."""
    try:
        p = payload_class().FromString(payload)
    except Exception:
        return False
    return any(m.name == REBIRTH and m.boolean_value for m in p.metrics)
