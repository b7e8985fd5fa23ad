"""SQLAlchemy ORM classes, mapped onto the Core tables of :mod:`registry.tables` (the schema is
declared there, once). PostgreSQL in production, SQLite as the embedded default."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime
from sqlalchemy.orm import DeclarativeBase, Mapped, relationship

from registry import tables
from registry.alerts.rules import KINDS, STATUSES
from registry.auth import ROLES as ROLES
from registry.device_queries import DEVICE_STATUSES as DEVICE_STATUSES
from registry.tables import BigId as BigId  # the notifier's tables (registry.notify.models) use it

SEVERITIES = ("critical", "major", "minor", "warning", "info")
ALERT_STATUSES = STATUSES
RULE_KINDS = KINDS
SCOPES = ("device", "type", "site", "all")


class Base(DeclarativeBase):
    metadata = tables.metadata
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}


class Device(Base):
    __table__ = tables.devices

    id: Mapped[str]
    type: Mapped[str]
    site: Mapped[str | None]
    labels: Mapped[dict[str, Any]]
    status: Mapped[str]
    online: Mapped[bool]
    online_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime | None]
    firmware_version: Mapped[str | None]
    secret_hash: Mapped[str | None]
    gateway: Mapped[str | None]


class Gateway(Base):
    __table__ = tables.gateways

    name: Mapped[str]
    prefix: Mapped[str]
    site: Mapped[str | None]
    status: Mapped[str]
    created_at: Mapped[datetime]
    secret_hash: Mapped[str | None]


class ApiKey(Base):
    __table__ = tables.api_keys

    id: Mapped[int]
    name: Mapped[str]
    key_prefix: Mapped[str]
    key_hash: Mapped[str]
    role: Mapped[str]
    sites: Mapped[list[str] | None]
    created_at: Mapped[datetime]
    disabled: Mapped[bool]


class AuditEntry(Base):
    __table__ = tables.audit_log

    id: Mapped[int]
    at: Mapped[datetime]
    actor: Mapped[str]
    action: Mapped[str]
    target: Mapped[str]
    detail: Mapped[dict[str, Any]]


class AlertRule(Base):
    __table__ = tables.alert_rules

    id: Mapped[int]
    name: Mapped[str]
    kind: Mapped[str]
    measurement: Mapped[str | None]
    field: Mapped[str | None]
    op: Mapped[str | None]
    threshold: Mapped[float | None]
    hold_s: Mapped[float]
    hysteresis: Mapped[float]
    clear_after_s: Mapped[float]
    level: Mapped[str | None]
    absolute: Mapped[bool]
    severity: Mapped[str]
    scope: Mapped[str]
    scope_value: Mapped[str | None]
    enabled: Mapped[bool]
    created_at: Mapped[datetime]


class Alert(Base):
    __table__ = tables.alerts

    id: Mapped[int]
    rule_id: Mapped[int]
    device_id: Mapped[str]
    site: Mapped[str | None]
    severity: Mapped[str]
    status: Mapped[str]
    message: Mapped[str]
    count: Mapped[int]
    last_value: Mapped[float | None]
    opened_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None]
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None]

    events: Mapped[list[AlertEvent]] = relationship(
        back_populates="alert", order_by="AlertEvent.id", cascade="all, delete-orphan"
    )


class AlertEvent(Base):
    __table__ = tables.alert_events

    id: Mapped[int]
    alert_id: Mapped[int]
    at: Mapped[datetime]
    action: Mapped[str]
    actor: Mapped[str]
    note: Mapped[str | None]
    value: Mapped[float | None]

    alert: Mapped[Alert] = relationship(back_populates="events")


class DeadLetterRow(Base):
    __table__ = tables.dead_letters

    id: Mapped[int]
    received_at: Mapped[datetime]
    topic: Mapped[str]
    device_id: Mapped[str | None]
    reason: Mapped[str]
    detail: Mapped[str]
    payload: Mapped[bytes]
    replayed_at: Mapped[datetime | None]
    key: Mapped[str | None]
    original_size: Mapped[int | None]
    payload_sha256: Mapped[str | None]


class SparkplugBirth(Base):
    """The latest birth of a Sparkplug edge node or of a device behind it (registry.sparkplug)."""

    __table__ = tables.sparkplug_births

    node_id: Mapped[str]
    device_id: Mapped[str]
    bd_seq: Mapped[str | None]
    metrics: Mapped[Any]
    born_at: Mapped[float]
