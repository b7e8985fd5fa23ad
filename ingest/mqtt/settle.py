"""Settling: deliveries whose data is safe are acknowledged to the broker, in receive order."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from ingest.metrics import Metrics
from ingest.mqtt.acks import AckTracker
from ingest.mqtt.receiver import Receiver


class Settler:
    """Turns settled tokens into acknowledgements on the receiver (``Writer``s call :meth:`settle`).

    One lock orders settling against a connection reset: the receiver discards what it queued for
    a connection once its ``on_connection_lost`` returned, so the tracker is reset under the same
    lock (:meth:`reset`) and no acknowledgement of an old connection reaches a new one.
    """

    def __init__(self, acks: AckTracker, receiver: Receiver, metrics: Metrics) -> None:
        self.acks = acks
        self.receiver = receiver
        self.metrics = metrics
        self._lock = threading.Lock()

    def settle(self, tokens: Sequence[int]) -> None:
        if not tokens:
            return
        with self._lock:
            self.receiver.ack(self.acks.done(list(tokens)))
        self.metrics.inc("iot_messages_acked_total", len(tokens))

    def reset(self) -> None:
        """A connection began or ended: forget every outstanding delivery (the broker redelivers)."""
        with self._lock:
            self.acks.reset()
