"""Tables of the notifier: channels, the outbox (one row per notification) and its attempts."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from registry.models import Base, BigId

CHANNEL_KINDS = ("webhook", "slack", "email")
TRANSITIONS = ("opened", "acknowledged", "resolved", "reminder")


class OutboxStatus(StrEnum):
    PENDING = "pending"  # due at due_at; claimed_by set while a notifier sends it
    SENT = "sent"
    FAILED = "failed"  # gave up after the retry policy's attempts
    SUPPRESSED = "suppressed"  # held back by damping (registry.notify.damping)


OUTBOX_STATUSES = tuple(s.value for s in OutboxStatus)


class NotifyChannel(Base):
    __tablename__ = "notify_channels"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(Text)  # URL (webhook, slack) or comma-separated addresses (email)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # e.g. smtp host/port/user/from
    secret_name: Mapped[str | None] = mapped_column(String(128))  # a key of IOT_NOTIFY_SECRETS, never the value
    min_severity: Mapped[str] = mapped_column(String(16), default="info")
    site: Mapped[str | None] = mapped_column(String(128))  # None: every site
    events: Mapped[list[str]] = mapped_column(JSON)  # which transitions to send
    renotify_minutes: Mapped[int] = mapped_column(Integer, default=0)  # 0: no reminders
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
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
