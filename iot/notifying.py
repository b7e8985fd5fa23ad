"""The notifier as the settings say, apart from the daemon so ``iot alerts channels`` loads no more."""

from __future__ import annotations

from sqlalchemy import Engine

from core.config import Settings
from ingest.metrics import Metrics
from registry.notify.models import CHANNEL_KINDS
from registry.notify.netguard import NetGuard
from registry.notify.notifier import Notifier


def build_notifier(settings: Settings, engine: Engine, metrics: Metrics | None = None) -> Notifier:
    """The notifier as the settings say: attempt deadline, channels side by side, rate, damping;
    counting into ``metrics`` (its series declared per channel kind)."""
    if metrics is not None:
        for name in ("iot_notifications_sent_total", "iot_notifications_failed_total"):
            metrics.declare(name, channel=CHANNEL_KINDS)
    return Notifier(
        engine,
        settings.notify_secrets,
        poll_s=settings.notify_poll,
        timeout=settings.notify_attempt_timeout,
        channels_at_once=settings.notify_channels_at_once,
        per_channel_per_minute=settings.notify_rate_per_minute,
        damping_window_s=settings.notify_damping_window,
        guard=NetGuard(settings.notify_allowed_networks),
        counts=metrics,
    )
