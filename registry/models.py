"""SQLAlchemy models. PostgreSQL in production, SQLite as the embedded default."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from registry.alerts.rules import KINDS, STATUSES

DEVICE_STATUSES = ("provisioned", "active", "disabled", "retired")
ROLES = ("viewer", "operator", "admin")
SEVERITIES = ("critical", "major", "minor", "warning", "info")
ALERT_STATUSES = STATUSES
RULE_KINDS = KINDS
SCOPES = ("device", "type", "site", "all")

BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(64), default="generic")
    site: Mapped[str | None] = mapped_column(String(128), index=True)
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="provisioned", index=True)
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    online_at: Mapped[datetime | None]  # when ``online`` was reported: an older report never overwrites it
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime | None]
    firmware_version: Mapped[str | None] = mapped_column(String(64))
    secret_hash: Mapped[str | None] = mapped_column(Text)
    gateway: Mapped[str | None] = mapped_column(String(64), index=True)  # None: publishes for itself


class Gateway(Base):
    """A broker credential that publishes for many devices (a Zigbee2MQTT bridge, a LoRaWAN network
    server) under one topic prefix; the exported ACL lets it write there and nowhere else."""

    __tablename__ = "gateways"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    prefix: Mapped[str] = mapped_column(String(256))  # active prefixes never overlap (checked on add)
    site: Mapped[str | None] = mapped_column(String(128), index=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime]
    secret_hash: Mapped[str | None] = mapped_column(Text)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16))
    sites: Mapped[list[str] | None] = mapped_column(JSON)
    created_at: Mapped[datetime]
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(256))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class AlertRule(Base):
    __tablename__ = "alert_rules"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    measurement: Mapped[str | None] = mapped_column(String(64))
    field: Mapped[str | None] = mapped_column(String(128))
    op: Mapped[str | None] = mapped_column(String(4))
    threshold: Mapped[float | None] = mapped_column(Float)
    hold_s: Mapped[float] = mapped_column(Float, default=0.0)
    hysteresis: Mapped[float] = mapped_column(Float, default=0.0)
    clear_after_s: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    level: Mapped[str | None] = mapped_column(String(16))
    absolute: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    severity: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(String(16), default="all")
    scope_value: Mapped[str | None] = mapped_column(String(128))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (
        Index(
            "uq_alerts_open_rule_device",
            "rule_id",
            "device_id",
            unique=True,
            postgresql_where=text("status <> 'resolved'"),
            sqlite_where=text("status <> 'resolved'"),
        ),
        Index("ix_alerts_status_opened", "status", "opened_at"),
        Index("ix_alerts_severity_opened", "severity", "opened_at"),
        Index("ix_alerts_device_opened", "device_id", "opened_at"),
        Index("ix_alerts_site_opened", "site", "opened_at"),
        Index("ix_alerts_opened", "opened_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("alert_rules.id", ondelete="CASCADE"))
    device_id: Mapped[str] = mapped_column(String(64))
    site: Mapped[str | None] = mapped_column(String(128))
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="open")
    message: Mapped[str] = mapped_column(Text, default="")
    count: Mapped[int] = mapped_column(Integer, default=1)
    last_value: Mapped[float | None] = mapped_column(Float)
    opened_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(128))
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(128))

    events: Mapped[list[AlertEvent]] = relationship(
        back_populates="alert", order_by="AlertEvent.id", cascade="all, delete-orphan"
    )


class AlertEvent(Base):
    __tablename__ = "alert_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(Text)
    value: Mapped[float | None] = mapped_column(Float)

    alert: Mapped[Alert] = relationship(back_populates="events")


class DeadLetterRow(Base):
    __tablename__ = "dead_letters"
    __table_args__ = (Index("ix_dead_letters_received", "received_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime]
    topic: Mapped[str] = mapped_column(Text)
    device_id: Mapped[str | None] = mapped_column(String(64), index=True)
    reason: Mapped[str] = mapped_column(String(32), index=True)
    detail: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    replayed_at: Mapped[datetime | None]
    key: Mapped[str | None] = mapped_column(String(64), unique=True)  # sha256(topic, payload): redelivery-safe
    original_size: Mapped[int | None] = mapped_column(BigInteger)  # set when payload is a truncated prefix
    payload_sha256: Mapped[str | None] = mapped_column(String(64))  # of the whole original, when truncated


class SparkplugBirth(Base):
    """The latest birth of a Sparkplug edge node (``device_id`` '') or of a device behind it: what
    names its data messages' aliases after a restart and across workers (registry.sparkplug)."""

    __tablename__ = "sparkplug_births"

    node_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)  # '' for the node's own birth
    bd_seq: Mapped[str | None] = mapped_column(String(20))  # the node's birth/death sequence (uint64 as text)
    metrics: Mapped[Any] = mapped_column(JSON)  # [[alias or null, name, field, datatype], ...]
    born_at: Mapped[float] = mapped_column(Float)
