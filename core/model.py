"""The values that flow through the pipeline. Plain data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

FieldValue = float | bool | str


class Kind(StrEnum):
    TELEMETRY = "telemetry"
    METRICS = "metrics"
    EVENTS = "events"
    CONFIG = "config"
    FIRMWARE = "firmware"
    MAINTENANCE = "maintenance"
    STATUS = "status"


MEASUREMENTS: dict[Kind, str] = {
    Kind.TELEMETRY: "sensor_readings",
    Kind.METRICS: "device_metrics",
    Kind.EVENTS: "event_logs",
}
COLLECTIONS: dict[Kind, str] = {
    Kind.CONFIG: "device_configs",
    Kind.FIRMWARE: "firmware",
    Kind.MAINTENANCE: "maintenance_records",
}
KIND_OF_MEASUREMENT = {m: k for k, m in MEASUREMENTS.items()}
KIND_OF_COLLECTION = {c: k for k, c in COLLECTIONS.items()}


class Reason(StrEnum):
    """Why a message was dead-lettered. Stable strings: scripts filter on them."""

    BAD_TOPIC = "bad_topic"
    UNKNOWN_KIND = "unknown_kind"
    OVERSIZE = "oversize"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    WRONG_TYPE = "wrong_type"
    NON_FINITE = "non_finite"
    NO_FIELDS = "no_fields"
    BAD_TIMESTAMP = "bad_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    INVALID_SENML = "invalid_senml"
    UNKNOWN_DEVICE = "unknown_device"
    DEVICE_DISABLED = "device_disabled"
    DEVICE_RETIRED = "device_retired"
    STORE_REJECTED = "store_rejected"


class Rejected(Exception):
    """Raised by decoders: the message cannot be stored as sent."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else str(reason))
        self.reason = reason
        self.detail = detail


@dataclass(slots=True)
class Point:
    """One time-series point: measurement, series (device_id + tags), fields, time in ns."""

    measurement: str
    device_id: str
    fields: dict[str, FieldValue]
    ts_ns: int
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Document:
    """One document for the document store. ``key`` is its idempotency key (redelivery-safe)."""

    collection: str
    device_id: str
    key: str
    body: dict[str, Any]
    received_at: float


@dataclass(slots=True)
class StatusChange:
    device_id: str
    online: bool
    at: float


@dataclass(slots=True)
class DeadLetter:
    reason: str
    topic: str
    payload: bytes
    received_at: float
    detail: str = ""
    device_id: str | None = None


Decoded = list[Point] | Document | StatusChange
