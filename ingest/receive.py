"""Options for the native MQTT session from the broker address and settings (the daemon's receive path)."""

from __future__ import annotations

import ssl

from ingest.broker import BrokerAddress
from ingest.config import Settings
from ingest.mqtt.session import Options


def session_options(broker: BrokerAddress, settings: Settings) -> Options:
    """A persistent QoS 1 subscription to ``{topic_root}/#``.

    MQTT 5 against real brokers (session expiry, receive maximum, retained messages not sent on
    subscribe); 3.1.1 against the embedded broker, which speaks only that.
    """
    return Options(
        host=broker.host,
        port=broker.port,
        client_id=settings.client_id,
        subscriptions=[(f"{settings.topic_root}/#", 1)],
        v5=not broker.embedded,
        clean_start=False,
        receive_maximum=settings.receive_maximum,
        keepalive=settings.keepalive,
        username=broker.username,
        password=broker.password,
        tls=ssl.create_default_context() if broker.tls else None,
        reconnect_min=0.5,
        reconnect_max=30.0,
    )
