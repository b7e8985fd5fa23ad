"""The notifier as the settings say, apart from the daemon so ``iot alerts channels`` loads no more."""

from __future__ import annotations

from sqlalchemy import Engine

from core.config import Settings
from registry.notify.netguard import NetGuard
from registry.notify.notifier import Notifier


def build_notifier(settings: Settings, engine: Engine) -> Notifier:
    """The notifier as the settings say: attempt deadline, channels side by side, rate, damping."""
    return Notifier(
        engine,
        settings.notify_secrets,
        poll_s=settings.notify_poll,
        timeout=settings.notify_attempt_timeout,
        channels_at_once=settings.notify_channels_at_once,
        per_channel_per_minute=settings.notify_rate_per_minute,
        damping_window_s=settings.notify_damping_window,
        guard=NetGuard(settings.notify_allowed_networks),
    )
