"""Sparkplug ``seq`` gaps: a lost message, found after a short reorder wait.

Each NBIRTH starts a node's ``seq`` (0-255, wrapping); every DBIRTH, NDATA, DDATA and DDEATH of the
node then carries the next one. A ``seq`` ahead of the expected one opens a gap: the skipped values
are awaited for ``reorder_s`` (a late message fills its place); a skipped value still missing when
the node's next message comes after that wait is a lost message: counted
(``iot_sparkplug_seq_lost_total``), logged, and the node is asked to rebirth (through the rate-limited
:class:`~core.sparkplug.Rebirths`), since a lost birth or a lost alias change would leave later data
unnamed. A ``seq`` behind the expected one (a duplicate, a stale message) changes nothing. The data
itself is decoded as always: what its known aliases name is stored.

Only meaningful where one process sees the node's whole stream: ``iot.service`` builds a tracker only
for a daemon without a shared subscription (``--workers 1``); a worker of several sees a share of
each node's messages, where every message would look like a gap.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from core.metricdefs import Counts
from core.sparkplug import Rebirths

log = logging.getLogger("iot.sparkplug")

SEQ_LOST = "iot_sparkplug_seq_lost_total"
_MAX_NODES = 65536


class SeqTracker:
    """The expected next ``seq`` of each edge node (``(group, edge)``), and its awaited skipped ones."""

    def __init__(
        self, rebirths: Rebirths, counts: Counts, reorder_s: float = 2.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rebirths = rebirths
        self.counts = counts
        self.reorder_s = reorder_s
        self.clock = clock
        self._lock = threading.Lock()
        self._next: dict[tuple[str, str], int] = {}
        self._missing: dict[tuple[str, str], dict[int, float]] = {}

    def born(self, group: str, edge: str, seq: int) -> None:
        """An NBIRTH with ``seq``: the node's sequence starts again (nothing before it is awaited)."""
        with self._lock:
            if len(self._next) >= _MAX_NODES:
                self._next.clear()
                self._missing.clear()
            self._next[(group, edge)] = (seq + 1) % 256
            self._missing.pop((group, edge), None)

    def seen(self, group: str, edge: str, seq: int) -> None:
        """A DBIRTH/NDATA/DDATA/DDEATH of the node with ``seq``. Never raises."""
        key = (group, edge)
        with self._lock:
            missing = self._missing.get(key)
            if missing and seq in missing:
                del missing[seq]  # a late message, within the wait or not: not lost
            else:
                expected = self._next.get(key)
                if expected is None:  # no birth seen by this process (e.g. since its start)
                    if len(self._next) >= _MAX_NODES:
                        self._next.clear()
                        self._missing.clear()
                    self._next[key] = (seq + 1) % 256
                    return
                ahead = (seq - expected) % 256
                if ahead >= 128:  # behind: a duplicate or a stale message
                    return
                if ahead:
                    awaited = self._missing.setdefault(key, {})
                    deadline = self.clock() + self.reorder_s
                    for k in range(ahead):
                        awaited[(expected + k) % 256] = deadline
                    missing = awaited
                self._next[key] = (seq + 1) % 256
            if not missing:  # in order, nothing awaited: the clock is not read
                return
            now = self.clock()
            lost = [s for s, deadline in missing.items() if deadline <= now]
            for s in lost:
                del missing[s]
        if lost:
            self.counts.inc(SEQ_LOST, float(len(lost)))
            log.warning(
                "Sparkplug edge node %s/%s: %d message(s) lost (seq gap); rebirth requested", group, edge, len(lost)
            )
            self.rebirths.request(group, edge)
