"""In-order acknowledgement bookkeeping for QoS 1 deliveries (pure, thread-safe)."""

from __future__ import annotations

import threading
from collections import deque


class AckTracker:
    """Hands out one token per delivery and releases message ids for PUBACK strictly in order.

    A delivery is acknowledged only when it and every delivery received before it on the same
    connection are done (MQTT requires PUBACKs in receive order). ``reset()`` starts a new
    connection generation: tokens of the old one are ignored, because the broker redelivers
    their messages on the new session and their message ids may be reused.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation = 0
        self._base = 0  # sequence number of _pending[0]
        self._pending: deque[list[int]] = deque()  # [mid, done]

    def reset(self) -> None:
        with self._lock:
            self._generation += 1
            self._base += len(self._pending)
            self._pending.clear()

    def add(self, mid: int) -> tuple[int, int]:
        with self._lock:
            seq = self._base + len(self._pending)
            self._pending.append([mid, 0])
            return (self._generation, seq)

    def done(self, tokens: list[tuple[int, int]]) -> list[int]:
        """Mark ``tokens`` done; return the message ids now due for PUBACK, in order."""
        ready: list[int] = []
        with self._lock:
            gen, base, pending = self._generation, self._base, self._pending
            for g, seq in tokens:
                if g == gen and seq >= base:
                    pending[seq - base][1] = 1
            while pending and pending[0][1]:
                ready.append(pending.popleft()[0])
                self._base += 1
        return ready

    @property
    def outstanding(self) -> int:
        return len(self._pending)
