"""The values that flow through the pipeline. Plain data, no I/O."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Protocol

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
    INVALID_NAME = "invalid_name"
    RESERVED_NAME = "reserved_name"
    TOO_MANY_FIELDS = "too_many_fields"
    CARDINALITY_LIMIT = "cardinality_limit"
    UNKNOWN_DEVICE = "unknown_device"
    DEVICE_DISABLED = "device_disabled"
    DEVICE_RETIRED = "device_retired"
    STORE_REJECTED = "store_rejected"
    UNKNOWN_ALIAS = "unknown_alias"  # a Sparkplug metric no known birth names (a rebirth is requested)
    WRONG_GATEWAY = "wrong_gateway"


class Rejected(Exception):
    """Raised by decoders: the message cannot be stored as sent."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else str(reason))
        self.reason = reason
        self.detail = detail


class DeclaredUnits:
    """The units a mapping declares for fields of one point (field -> unit), read-only.

    A declared unit comes from configuration (a mapping's ``units`` table, a preset's table), so it
    is not a tag on every point: it is stored once per (device, measurement, field) in the
    ``field_units`` measurement (``ingest.decoding.field_units``), and a point without a ``unit``
    tag is in its fields' declared units. Equal by content (hash computed once)."""

    __slots__ = ("_hash", "unit_set", "units")

    def __init__(self, units: Mapping[str, str]) -> None:
        self.units: Mapping[str, str] = MappingProxyType(dict(units))
        self.unit_set = frozenset(self.units.values())
        self._hash = hash(frozenset(self.units.items()))

    def __eq__(self, other: object) -> bool:
        return self is other or (isinstance(other, DeclaredUnits) and self.units == other.units)

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"DeclaredUnits({dict(self.units)!r})"

    def __reduce__(self) -> tuple[type[DeclaredUnits], tuple[dict[str, str]]]:
        return (DeclaredUnits, (dict(self.units),))


@dataclass(slots=True)
class Point:
    """One time-series point: measurement, series (device_id + tags), fields, time in ns.

    ``declared``: the units a mapping declares for some of its fields (not stored with the point,
    and not spooled: the decoder turns it into ``field_units`` points before the point is batched)."""

    measurement: str
    device_id: str
    fields: dict[str, FieldValue]
    ts_ns: int
    tags: dict[str, str] = field(default_factory=dict)
    declared: DeclaredUnits | None = None


class DeviceEntry(Protocol):
    """A device directory entry: what routing and alert evaluation read of a device
    (``registry.directory.DeviceInfo`` has it)."""

    @property
    def type(self) -> str: ...
    @property
    def site(self) -> str | None: ...
    @property
    def status(self) -> str: ...
    @property
    def gateway(self) -> str | None: ...  # the gateway it publishes through; None: it publishes for itself


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


LETTER_PREFIX_BYTES = 4096
"""What a dead letter keeps of a payload beyond the size limit (plus its size and SHA-256)."""


@dataclass(slots=True)
class DeadLetter:
    """A message that could not be stored. ``payload`` is the raw bytes, or only their first
    :data:`LETTER_PREFIX_BYTES` when ``original_size`` is set (see :meth:`bounded`)."""

    reason: str
    topic: str
    payload: bytes
    received_at: float
    detail: str = ""
    device_id: str | None = None
    original_size: int | None = None  # set when payload is a truncated prefix
    sha256: str | None = None  # of the whole original payload, when truncated

    @property
    def truncated(self) -> bool:
        return self.original_size is not None

    @classmethod
    def bounded(
        cls,
        reason: str,
        topic: str,
        payload: bytes,
        received_at: float,
        detail: str = "",
        device_id: str | None = None,
        *,
        limit: int,
    ) -> DeadLetter:
        """A letter that keeps ``payload`` whole up to ``limit`` bytes; beyond, a bounded prefix
        plus the original size and SHA-256 (a flood of huge messages must not fill the database)."""
        if len(payload) <= limit:
            return cls(reason, topic, payload, received_at, detail, device_id)
        digest = hashlib.sha256(payload).hexdigest()
        keep = min(limit, LETTER_PREFIX_BYTES)
        return cls(reason, topic, bytes(payload[:keep]), received_at, detail, device_id, len(payload), digest)


@dataclass(slots=True)
class Bundle:
    """One message that is readings and status changes at once (a Sparkplug birth: values and
    online; a node death: the node and its devices offline). Either list may be empty."""

    points: list[Point]
    status: list[StatusChange]


Decoded = list[Point] | Document | StatusChange | Bundle


@dataclass(frozen=True, slots=True)
class GatewayClaim:
    """Messages for ``device_id`` that came through ``via`` (a gateway) although the registry has the
    device behind ``registered`` (another gateway, or None: a device publishing for itself): refused,
    and recorded in the audit trail (one claim per device and gateway per registry batch)."""

    device_id: str
    via: str
    registered: str | None
    topic: str
    first_at: float
    count: int = 1


@dataclass(slots=True)
class RegistryActivity:
    """What a registry batch records besides its status changes: last seen per device, devices to
    auto-register (id → type) and the gateway each was first seen through (id → gateway), firmware
    versions reported (id → version), and gateway claims refused (for the audit trail)."""

    last_seen: dict[str, float] = field(default_factory=dict)
    register: dict[str, str] = field(default_factory=dict)
    firmware: dict[str, str] = field(default_factory=dict)
    gateways: dict[str, str] = field(default_factory=dict)
    claims: list[GatewayClaim] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.last_seen or self.register or self.firmware or self.claims)
