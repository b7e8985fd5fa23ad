"""One writer thread per destination: write each batch in one call, spool on outage, settle acks."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from core.model import DeadLetter
from core.stores import StoreUnavailable
from ingest.metrics import Metrics
from ingest.routing import Batch, Token, rejected_letters
from ingest.spool import Spool, SpoolFull

log = logging.getLogger("iot.ingest")

WriteFn = Callable[[Batch], list[tuple[Any, str]]]
_STOP = object()


class Writer:
    """Owns one destination's store calls, its spool and its retry schedule.

    A batch is *settled* (its deliveries released for PUBACK) once it is written, or spooled to
    disk, or its refused items are dead-lettered. While the spool holds anything, new batches
    go behind it so order is kept. When the spool is full, batches are held unsettled: no
    acknowledgements go out, and the broker stops delivering once its in-flight window is
    full (backpressure, never loss).
    """

    def __init__(
        self,
        dest: str,
        write: WriteFn,
        spool: Spool,
        settle: Callable[[list[Token]], None],
        metrics: Metrics,
        *,
        dead_letter: Callable[[list[DeadLetter], list[Token]], None] | None = None,
        after_write: Sequence[Callable[[Batch], None]] = (),
        retry_min: float = 0.5,
        retry_max: float = 15.0,
    ) -> None:
        self.dest = dest
        self._write_fn = write
        self.spool = spool
        self._settle = settle
        self.metrics = metrics
        self._dead_letter = dead_letter
        self._after_write = after_write
        self._retry_min, self._retry_max = retry_min, retry_max
        self._backoff = retry_min
        self._next_try = 0.0
        self.queue: queue.Queue[Any] = queue.Queue()
        self.held: deque[Batch] = deque()
        self.up = True
        self.idle = threading.Event()
        self.idle.set()
        self._thread = threading.Thread(target=self._run, name=f"writer-{dest}", daemon=True)
        metrics.gauge("iot_spool_bytes", lambda: spool.bytes, dest=dest)
        metrics.gauge("iot_spool_batches", lambda: spool.records, dest=dest)
        metrics.gauge("iot_held_batches", lambda: len(self.held), dest=dest)
        metrics.gauge("iot_store_up", lambda: 1.0 if self.up else 0.0, dest=dest)

    def start(self) -> None:
        self._thread.start()

    def submit(self, batch: Batch) -> None:
        self.idle.clear()
        self.queue.put(batch)

    def stop(self, timeout: float) -> bool:
        """Process everything queued, try the spool once more, stop. True if nothing is held."""
        self.queue.put(_STOP)
        self._thread.join(timeout)
        return not self.held and not self._thread.is_alive()

    @property
    def backlog(self) -> int:
        return self.spool.records + len(self.held) + self.queue.qsize()

    def _run(self) -> None:
        while True:
            waiting = self.spool.records or self.held
            timeout = max(0.0, self._next_try - time.monotonic()) if waiting else None
            try:
                item = self.queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            if item is _STOP:
                self._drain_queue()
                self._next_try = 0.0
                self._replay()
                return
            if item is not None:
                self._accept(item)
            if self.spool.records or self.held:
                self._replay()
            if self.queue.empty() and not self.spool.records and not self.held:
                self.idle.set()

    def _drain_queue(self) -> None:
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP:
                self._accept(item)

    def _write(self, batch: Batch) -> list[DeadLetter]:
        started = time.perf_counter()
        rejected = self._write_fn(batch)
        m = self.metrics
        m.inc("iot_batches_written_total", dest=self.dest)
        m.inc("iot_items_written_total", len(batch.items) - len(rejected), dest=self.dest)
        m.inc("iot_write_seconds_total", time.perf_counter() - started, dest=self.dest)
        if not rejected:
            return []
        m.inc("iot_items_rejected_total", len(rejected), dest=self.dest)
        return rejected_letters(batch, rejected)

    def _finish(self, batch: Batch, letters: list[DeadLetter]) -> None:
        """Settle ``batch``; with refused items, the dead-letter writer settles it once they are stored."""
        self._observe(batch)
        if letters and self._dead_letter is not None:
            self._dead_letter(letters, batch.tokens)
        else:
            self._settle(batch.tokens)

    def _observe(self, batch: Batch) -> None:
        for fn in self._after_write:
            try:
                fn(batch)
            except Exception:
                log.exception("observer failed on a %s batch", self.dest)

    def _accept(self, batch: Batch) -> None:
        self.metrics.inc("iot_batch_items_total", len(batch.items), dest=self.dest)
        if not self.spool.records and not self.held and time.monotonic() >= self._next_try:
            try:
                letters = self._write(batch)
            except StoreUnavailable as e:
                self._outage(e)
            else:
                self._recovered()
                self._finish(batch, letters)
                return
        self._to_spool(batch)

    def _to_spool(self, batch: Batch) -> None:
        if self.held:
            self.held.append(batch)
            return
        try:
            self.spool.append(batch.record())
        except SpoolFull:
            self.metrics.inc("iot_spool_full_total", dest=self.dest)
            self.held.append(batch)
            return
        self.metrics.inc("iot_spooled_batches_total", dest=self.dest)
        self._observe(batch)
        self._settle(batch.tokens)

    def _replay(self) -> None:
        if time.monotonic() < self._next_try:
            return
        while (record := self.spool.peek()) is not None:
            items, origins, extra = record
            try:
                letters = self._write(Batch(self.dest, items, origins, extra=extra))
            except StoreUnavailable as e:
                self._outage(e)
                return
            if letters and self._dead_letter is not None:
                self._dead_letter(letters, [])
            self.spool.pop()
            self.metrics.inc("iot_replayed_batches_total", dest=self.dest)
            self._recovered()
            while self.held:  # room again: move held batches behind the spool, in order
                try:
                    self.spool.append(self.held[0].record())
                except SpoolFull:
                    break
                b = self.held.popleft()
                self._observe(b)
                self._settle(b.tokens)
        while self.held:
            b = self.held[0]
            try:
                letters = self._write(b)
            except StoreUnavailable as e:
                self._outage(e)
                return
            self.held.popleft()
            self._recovered()
            self._finish(b, letters)

    def _outage(self, e: Exception) -> None:
        if self.up:
            log.warning("%s store unavailable, spooling: %s", self.dest, e)
        self.up = False
        self.metrics.inc("iot_store_errors_total", dest=self.dest)
        self._next_try = time.monotonic() + self._backoff
        self._backoff = min(self._retry_max, self._backoff * 2)

    def _recovered(self) -> None:
        if not self.up:
            log.warning("%s store is back; replaying %d spooled batches", self.dest, self.spool.records)
        self.up = True
        self._backoff = self._retry_min
        self._next_try = 0.0
