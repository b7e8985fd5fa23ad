"""Publish raw messages to a running broker at QoS 1, waiting for every PUBACK (replay)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from core.stores import StoreUnavailable
from ingest.mqtt.broker import BrokerAddress, make_client


def publish_all(addr: BrokerAddress, messages: Sequence[tuple[str, bytes]], *, timeout: float = 30.0) -> list[bool]:
    """Publish each ``(topic, payload)`` at QoS 1; one flag per message: True when the broker
    acknowledged it (MQTT 5: with a success reason code). Raises :class:`StoreUnavailable` when
    the broker cannot be reached."""
    if addr.embedded:
        raise ValueError("publishing needs a running broker URL, not the embedded broker")
    client, connect_kwargs = make_client(addr, f"iot-replay-{uuid.uuid4().hex[:8]}")
    connected = threading.Event()
    refused: list[str] = []
    failed: set[int] = set()

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        if reason.is_failure:
            refused.append(str(reason))
        connected.set()

    def on_publish(_c: Any, _u: Any, mid: int, reason: Any, _p: Any = None) -> None:
        if reason.is_failure:
            failed.add(mid)

    client.on_connect = on_connect
    client.on_publish = on_publish
    where = f"{addr.host}:{addr.port}"
    try:
        client.connect(addr.host, addr.port, **connect_kwargs)
    except OSError as e:
        raise StoreUnavailable(f"broker {where} unreachable: {e}") from e
    client.loop_start()
    try:
        if not connected.wait(timeout):
            raise StoreUnavailable(f"broker {where} did not answer CONNECT in {timeout:.0f}s")
        if refused:
            raise StoreUnavailable(f"broker {where} refused the connection: {refused[0]}")
        infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
        deadline = time.monotonic() + timeout
        acked = []
        for info in infos:
            try:
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            except (RuntimeError, ValueError):  # not queued: connection lost or queue full
                acked.append(False)
                continue
            acked.append(info.is_published() and info.mid not in failed)
        return acked
    finally:
        client.disconnect()
        client.loop_stop()
