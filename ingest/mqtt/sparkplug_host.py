"""The daemon as a Sparkplug B host application: its retained ``spBv1.0/STATE/{host_id}`` birth and
last will (Sparkplug 3.0, section 7.5: JSON ``{"online": bool, "timestamp": ms}``, QoS 1, retained;
the will carries the birth's timestamp), and rebirth requests (``NCMD`` ``Node Control/Rebirth``),
at most one per edge node per ``min_interval_s``.

The daemon's receive session only subscribes; this is a small paho client of its own, publishing only.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ingest.decoding.sparkplug.encode import rebirth_command
from ingest.decoding.sparkplug.topic import PREFIX, command_topic
from ingest.mqtt.broker import BrokerAddress, make_client

log = logging.getLogger("iot.sparkplug")


def state_topic(host_id: str) -> str:
    return f"{PREFIX}STATE/{host_id}"


def state_payload(online: bool, timestamp_ms: int) -> bytes:
    return json.dumps({"online": online, "timestamp": timestamp_ms}).encode()


class SparkplugHost:
    """Publishes the host's STATE and the rebirth requests (a ``Rebirths``). Thread-safe."""

    def __init__(
        self,
        broker: BrokerAddress,
        host_id: str,
        *,
        client_id: str,
        min_interval_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.broker = broker
        self.host_id = host_id
        self.topic = state_topic(host_id)
        self.min_interval_s = min_interval_s
        self.clock = clock
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], float] = {}
        self._born_ms = int(time.time() * 1000)
        self._client, self._connect_kwargs = make_client(broker, client_id)
        self._client.will_set(self.topic, state_payload(False, self._born_ms), qos=1, retain=True)
        self._client.on_connect = self._on_connect
        self._client.reconnect_delay_set(1, 30)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any = None) -> None:
        if not getattr(reason, "is_failure", False):
            client.publish(self.topic, state_payload(True, self._born_ms), qos=1, retain=True)

    def start(self) -> SparkplugHost:
        self._client.connect_async(self.broker.host, self.broker.port, **self._connect_kwargs)
        self._client.loop_start()
        return self

    def request(self, group: str, edge: str) -> None:
        """Ask ``group``/``edge`` to rebirth, unless asked within ``min_interval_s``. Never raises."""
        now = self.clock()
        with self._lock:
            last = self._last.get((group, edge))
            if last is not None and now - last < self.min_interval_s:
                return
            if len(self._last) >= 65536:
                self._last.clear()
            self._last[(group, edge)] = now
        try:
            self._client.publish(command_topic(group, edge), rebirth_command(int(time.time() * 1000)), qos=0)
            log.info("asked Sparkplug edge node %s/%s to rebirth", group, edge)
        except Exception as e:  # a publish failure must not fail the message being decoded
            log.warning("rebirth request to %s/%s failed: %s", group, edge, type(e).__name__)

    def stop(self) -> None:
        """Publish the STATE death (a clean stop sends no will) and disconnect."""
        try:
            info = self._client.publish(self.topic, state_payload(False, self._born_ms), qos=1, retain=True)
            info.wait_for_publish(5.0)
        except Exception as e:
            log.debug("STATE death not published: %s", e)
        self._client.disconnect()
        self._client.loop_stop()
