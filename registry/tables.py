"""The registry's tables as SQLAlchemy Core ``Table`` objects: the one declaration of its schema.

The ORM classes of :mod:`registry.models` are mapped onto these tables; read commands query them
through Core alone, so they load neither the ORM nor any dialect but the database's own (``iot
alerts list`` on the embedded registry: no ``sqlalchemy.orm``, no ``sqlalchemy.dialects.postgresql``).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData()

BigId = BigInteger().with_variant(Integer(), "sqlite")
TS = DateTime(timezone=True)


def _id() -> Column[int]:
    return Column("id", BigId, primary_key=True, autoincrement=True)


devices = Table(
    "devices",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("type", String(64), nullable=False, default="generic"),
    Column("site", String(128), index=True),
    Column("labels", JSON, nullable=False, default=dict),
    Column("status", String(16), nullable=False, default="provisioned", index=True),
    Column("online", Boolean, nullable=False, default=False),
    Column("online_at", TS),  # when ``online`` was reported: an older report never overwrites it
    Column("created_at", TS, nullable=False),
    Column("last_seen_at", TS),
    Column("firmware_version", String(64)),
    Column("secret_hash", Text),
    Column("gateway", String(64), index=True),  # None: publishes for itself
)

# A broker credential that publishes for many devices (a Zigbee2MQTT bridge, a LoRaWAN network
# server) under one topic prefix; the exported ACL lets it write there and nowhere else.
gateways = Table(
    "gateways",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("prefix", String(256), nullable=False),  # active prefixes never overlap (checked on add)
    Column("site", String(128), index=True),
    Column("status", String(16), nullable=False, default="active"),
    Column("created_at", TS, nullable=False),
    Column("secret_hash", Text),
)

api_keys = Table(
    "api_keys",
    metadata,
    _id(),
    Column("name", String(128), nullable=False, unique=True),
    Column("key_prefix", String(16), nullable=False, index=True),
    Column("key_hash", Text, nullable=False),
    Column("role", String(16), nullable=False),
    Column("sites", JSON),
    Column("created_at", TS, nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    _id(),
    Column("at", TS, nullable=False, index=True),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(256), nullable=False),
    Column("detail", JSON, nullable=False, default=dict),
)

alert_rules = Table(
    "alert_rules",
    metadata,
    _id(),
    Column("name", String(128), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("measurement", String(64)),
    Column("field", String(128)),
    Column("op", String(4)),
    Column("threshold", Float),
    Column("hold_s", Float, nullable=False, default=0.0),
    Column("hysteresis", Float, nullable=False, default=0.0),
    Column("clear_after_s", Float, nullable=False, default=0.0, server_default="0"),
    Column("level", String(16)),
    Column("absolute", Boolean, nullable=False, default=True, server_default=text("true")),
    Column("severity", String(16), nullable=False),
    Column("scope", String(16), nullable=False, default="all"),
    Column("scope_value", String(128)),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_at", TS, nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    _id(),
    Column("rule_id", ForeignKey("alert_rules.id", ondelete="CASCADE"), nullable=False),
    Column("device_id", String(64), nullable=False),
    Column("site", String(128)),
    Column("severity", String(16), nullable=False),
    Column("status", String(16), nullable=False, default="open"),
    Column("message", Text, nullable=False, default=""),
    Column("count", Integer, nullable=False, default=1),
    Column("last_value", Float),
    Column("opened_at", TS, nullable=False),
    Column("last_seen_at", TS, nullable=False),
    Column("acknowledged_at", TS),
    Column("acknowledged_by", String(128)),
    Column("resolved_at", TS),
    Column("resolved_by", String(128)),
    # One open alert per (rule, device): partial, WHERE status <> 'resolved', on both databases.
    # The WHERE clause is migration 0001's (which creates it); naming a dialect's option here
    # (postgresql_where) would import that dialect in every command, on SQLite too.
    Index("uq_alerts_open_rule_device", "rule_id", "device_id", unique=True),
    Index("ix_alerts_status_opened", "status", "opened_at"),
    Index("ix_alerts_severity_opened", "severity", "opened_at"),
    Index("ix_alerts_device_opened", "device_id", "opened_at"),
    Index("ix_alerts_site_opened", "site", "opened_at"),
    Index("ix_alerts_opened", "opened_at"),
)

alert_events = Table(
    "alert_events",
    metadata,
    _id(),
    Column("alert_id", ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("at", TS, nullable=False),
    Column("action", String(32), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("note", Text),
    Column("value", Float),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    _id(),
    Column("received_at", TS, nullable=False),
    Column("topic", Text, nullable=False),
    Column("device_id", String(64), index=True),
    Column("reason", String(32), nullable=False, index=True),
    Column("detail", Text, nullable=False, default=""),
    Column("payload", LargeBinary, nullable=False),
    Column("replayed_at", TS),
    Column("key", String(64), unique=True),  # sha256(topic, payload): redelivery-safe
    Column("original_size", BigInteger),  # set when payload is a truncated prefix
    Column("payload_sha256", String(64)),  # of the whole original, when truncated
    Index("ix_dead_letters_received", "received_at"),
)

# The latest birth of a Sparkplug edge node (``device_id`` '') or of a device behind it: what
# names its data messages' aliases after a restart and across workers (registry.sparkplug).
sparkplug_births = Table(
    "sparkplug_births",
    metadata,
    Column("node_id", String(64), primary_key=True),
    Column("device_id", String(64), primary_key=True),  # '' for the node's own birth
    Column("bd_seq", String(20)),  # the node's birth/death sequence (uint64 as text)
    Column("metrics", JSON, nullable=False),  # [[alias or null, name, field, datatype], ...]
    Column("born_at", Float, nullable=False),
)

notify_channels = Table(
    "notify_channels",
    metadata,
    _id(),
    Column("name", String(128), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("target", Text, nullable=False),  # URL (webhook, slack) or comma-separated addresses (email)
    Column("options", JSON, nullable=False, default=dict),  # e.g. smtp host/port/user/from
    Column("secret_name", String(128)),  # a key of IOT_NOTIFY_SECRETS, never the value
    Column("min_severity", String(16), nullable=False, default="info"),
    Column("site", String(128)),  # None: every site
    Column("events", JSON, nullable=False),  # which transitions to send
    Column("renotify_minutes", Integer, nullable=False, default=0),  # 0: no reminders
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_at", TS, nullable=False),
)
