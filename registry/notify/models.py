"""Tables of the notifier: channels, the outbox (one row per notification) and its attempts."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from registry import tables
from registry.models import Base, BigId
from registry.notify.channels import CHANNEL_KINDS as CHANNEL_KINDS
from registry.notify.channels import TRANSITIONS as TRANSITIONS


class OutboxStatus(StrEnum):
    PENDING = "pending"  # due at due_at; claimed_by set while a notifier sends it
    SENT = "sent"
    FAILED = "failed"  # gave up after the retry policy's attempts
    SUPPRESSED = "suppressed"  # held back by damping (registry.notify.damping)


OUTBOX_STATUSES = tuple(s.value for s in OutboxStatus)


class NotifyChannel(Base):
    __table__ = tables.notify_channels

    id: Mapped[int]
    name: Mapped[str]
    kind: Mapped[str]
    target: Mapped[str]
    options: Mapped[dict[str, Any]]
    secret_name: Mapped[str | None]
    min_severity: Mapped[str]
    site: Mapped[str | None]
    events: Mapped[list[str]]
    renotify_minutes: Mapped[int]
    enabled: Mapped[bool]
    created_at: Mapped[datetime]


class NotifyOutbox(Base):
    __tablename__ = "notify_outbox"
    __table_args__ = (Index("ix_notify_outbox_due", "status", "due_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(128), unique=True)  # alert:channel:transition[:n], sent once
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("notify_channels.id", ondelete="CASCADE"), index=True)
    transition: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)  # the alert as it was at the transition
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    due_at: Mapped[datetime]  # next attempt; a claim pushes it out by the lease
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    sent_at: Mapped[datetime | None]


class NotifyAttempt(Base):
    __tablename__ = "notify_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("notify_outbox.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    ok: Mapped[bool] = mapped_column(Boolean)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    elapsed_ms: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str] = mapped_column(String(64), default="")
