"""Options for the native MQTT session from the broker address and settings (the daemon's receive path)."""

from __future__ import annotations

import gc
import ssl

from core.config import Settings
from ingest.decoding.sparkplug.rule import SUBSCRIPTIONS
from ingest.mqtt.broker import BrokerAddress
from ingest.mqtt.session import Options


def subscription_filter(settings: Settings) -> str:
    """``{topic_root}/#``, or ``$share/{share_group}/{topic_root}/#`` for one of several workers."""
    root = f"{settings.topic_root}/#"
    return f"$share/{settings.share_group}/{root}" if settings.share_group else root


def sparkplug_filters(settings: Settings) -> list[str]:
    """The Sparkplug B edge-node message filters (``IOT_SPARKPLUG``), shared like the root's."""
    if not settings.sparkplug:
        return []
    return [f"$share/{settings.share_group}/{f}" if settings.share_group else f for f in SUBSCRIPTIONS]


def session_options(broker: BrokerAddress, settings: Settings) -> Options:
    """A persistent QoS 1 subscription to ``{topic_root}/#`` (and Sparkplug B's, when enabled).

    MQTT 5 against real brokers (session expiry, receive maximum, retained messages not sent on
    subscribe); 3.1.1 against the embedded broker, which speaks only that.
    """
    return Options(
        host=broker.host,
        port=broker.port,
        client_id=settings.client_id,
        subscriptions=[(subscription_filter(settings), 1), *((f, 1) for f in sparkplug_filters(settings))],
        v5=not broker.embedded,
        clean_start=False,
        receive_maximum=settings.receive_maximum,
        keepalive=settings.keepalive,
        username=broker.username,
        password=broker.password,
        tls=ssl.create_default_context() if broker.tls else None,
        reconnect_min=0.5,
        reconnect_max=30.0,
        max_packet_size=settings.max_packet_bytes,
    )


def tune_gc() -> None:
    """Fewer, cheaper cyclic-GC passes for a process that allocates a few objects per message.

    The pipeline's objects (deliveries, points, batches) are acyclic and die young, but at tens of
    thousands of messages per second the default thresholds (700, 10, 10) ran the collector so often
    that it showed as the hottest line of the receive path. Objects alive after start-up are frozen
    out of the collector; young collections run every 50,000 allocations.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
