"""A writer's prepare stage: one thread between ``Writer.submit`` and the writer thread.

It takes submitted batches in order, has the destination make what it can ahead of the write
(``Destination.prepare``: a line-protocol store encodes the points) and hands each on as a
:class:`Ready` in the same order, so the next batch is encoded while the store takes this one and
the writer thread only sends. It changes no outcome: a failed prepare hands the batch on unprepared
(the write then does the work and reports what fails), the writer still decides write, spool or
hold, and a prepared encoding is used only for the very items it was made from. No exception ends
the thread; the stop marker goes through it, behind everything submitted before it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ingest.routing import Batch
from ingest.stores.partial_writes import Encoded

log = logging.getLogger("iot.ingest")


@dataclass(frozen=True, slots=True)
class Ready:
    """A batch and what its destination made for it ahead of the write (None: nothing)."""

    batch: Batch
    prepared: Encoded | None


class Ahead:
    """Prepares batches from :attr:`inbox` on its own thread and puts :class:`Ready` on ``out``;
    anything else put in the inbox (the writer's stop marker) is passed on as it is, in order, and
    ends the thread."""

    def __init__(self, name: str, prepare: Callable[[Batch], Encoded | None], out: queue.Queue[Any]) -> None:
        self._prepare = prepare
        self._out = out
        self.inbox: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=f"prepare-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, item: object) -> None:
        self.inbox.put(item)

    @property
    def pending(self) -> int:
        """Items submitted and not yet passed on (queued, or being prepared)."""
        return self.inbox.unfinished_tasks

    def _run(self) -> None:
        while True:
            item = self.inbox.get()
            last = not isinstance(item, Batch)
            try:
                self._out.put(item if last else Ready(item, self._made(item)))
            finally:
                self.inbox.task_done()
            if last:
                return

    def _made(self, batch: Batch) -> Encoded | None:
        try:
            return self._prepare(batch)
        except Exception as e:  # the write does the work itself and reports what fails there
            log.debug("preparing a %s batch failed (%s): written unprepared", batch.dest, type(e).__name__)
            return None
