"""In-order acknowledgement bookkeeping for QoS 1 deliveries (pure, thread-safe)."""

from __future__ import annotations

import threading
from collections import deque


class AckTracker:
    """Hands out one token per delivery and releases message ids for PUBACK strictly in order.

    A delivery is acknowledged only when it and every delivery received before it on the same
    connection are done (MQTT requires PUBACKs in receive order). A token is the delivery's
    sequence number, unique for the tracker's life (an int: nothing for the GC to track).
    ``reset()`` starts a new connection: tokens handed out before it are ignored, because the
    broker redelivers their messages on the new session and their message ids may be reused.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._base = 0  # sequence number of _pending[0]
        self._pending: deque[int] = deque()  # message ids in receive order (ints: no GC-tracked objects)
        self._done: set[int] = set()  # sequence numbers done ahead of the head

    def reset(self) -> None:
        with self._lock:
            self._base += len(self._pending)  # every older token is now below the base: ignored
            self._pending.clear()
            self._done.clear()

    def add(self, mid: int) -> int:
        with self._lock:
            self._pending.append(mid)
            return self._base + len(self._pending) - 1

    def add_many(self, mids: list[int]) -> int:
        """Track ``mids`` (in receive order) with one lock acquisition; their tokens are the
        returned number and the ones following it."""
        with self._lock:
            first = self._base + len(self._pending)
            self._pending.extend(mids)
            return first

    def done(self, tokens: list[int]) -> list[int]:
        """Mark ``tokens`` done; return the message ids now due for PUBACK, in order."""
        with self._lock:
            base, pending, done = self._base, self._pending, self._done
            end = base + len(pending)
            for seq in tokens:
                if base <= seq < end:
                    done.add(seq)
            n = 0
            while base + n in done:
                done.remove(base + n)
                n += 1
            if not n:
                return []
            self._base = base + n
            popleft = pending.popleft
            return [popleft() for _ in range(n)]

    @property
    def outstanding(self) -> int:
        return len(self._pending)
