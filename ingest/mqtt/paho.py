"""The paho receive path (``IOT_MQTT_CLIENT=paho``): a :class:`~ingest.mqtt.receiver.Receiver`.

paho's callbacks stay private here: each delivery becomes a :class:`~ingest.mqtt.packets.Publish`
handed to the same :class:`~ingest.mqtt.session.Handler` the native session calls, so the rest of
the daemon cannot tell the two apart. paho delivers one message per callback (the native session
hands over one read's worth); acknowledgements are paho's manual ``ack``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import paho.mqtt.client as mqtt

from ingest.mqtt.broker import BrokerAddress, make_client, subscribe_ingest
from ingest.mqtt.packets import Oversized, Publish
from ingest.mqtt.session import Handler, Options

log = logging.getLogger("iot.mqtt")


class PahoReceiver:
    def __init__(self, broker: BrokerAddress, options: Options) -> None:
        self.broker = broker
        self.options = options
        self.client, self._connect_kwargs = make_client(
            broker, options.client_id, persistent=True, manual_ack=True, receive_maximum=options.receive_maximum
        )
        self.client.reconnect_delay_set(1, 30)
        self._handler: Handler | None = None
        self._stopping = False

    def start(self, handler: Handler) -> None:
        self._handler = handler
        c = self.client
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        c.connect_async(self.broker.host, self.broker.port, self.options.keepalive, **self._connect_kwargs)
        c.loop_start()

    def ack(self, mids: Iterable[int]) -> None:
        for mid in mids:
            self.client.ack(mid, 1)

    def stop(self) -> None:
        self._stopping = True
        if self._handler is not None:
            self.client.disconnect()
            self.client.loop_stop()

    @property
    def thread_alive(self) -> bool:
        t = self.client._thread
        return t is not None and t.is_alive()

    # -- paho callbacks (its network thread) ---------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, reason: Any, _p: Any = None) -> None:
        if reason.is_failure:
            log.error("broker refused connection: %s", reason)
            return
        assert self._handler is not None
        self._handler.on_connected(bool(getattr(flags, "session_present", False)))
        for topic, _qos in self.options.subscriptions:
            subscribe_ingest(client, topic)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, reasons: Any, _p: Any = None) -> None:
        assert self._handler is not None
        self._handler.on_subscribed([int(r.value) for r in reasons])

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        if self._handler is not None:
            self._handler.on_connection_lost("stopped" if self._stopping else str(reason))

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = msg._topic.decode("utf-8", "replace")
        delivery: list[Publish | Oversized] = [
            Publish(topic, bytes(msg.payload), msg.qos, msg.mid, bool(msg.retain), bool(msg.dup))
        ]
        assert self._handler is not None
        self._handler.on_messages(delivery)
