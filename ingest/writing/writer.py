"""One writer thread per destination: write each batch in one call, spool on failure, settle acks.

A destination that prepares (a line-protocol store encodes the points) gets a prepare stage in
front of the writer thread (:mod:`ingest.writing.ahead`): the next batch is encoded while the store
takes this one, and the writer thread only sends.

No exception ends a writer: every failure of a write (transient, needing an operator, or an
unexpected bug) is classified (:mod:`ingest.writing.failures`), logged once per episode (unexpected ones
with their traceback), counted per destination and error class, reported by :meth:`Writer.health`,
and the batch is spooled and retried with jittered backoff until the store takes it."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict, deque
from collections.abc import Sequence
from typing import Any, Protocol

from core.backoff import Backoff
from core.model import DeadLetter
from ingest.metrics import Metrics
from ingest.observers import AfterWrite
from ingest.routing import DEADLETTERS, Batch, Token, rejected_letters
from ingest.stores.partial_writes import Encoded
from ingest.writing.ahead import Ahead, Ready
from ingest.writing.destinations import Destination, StoreDestination
from ingest.writing.failures import NEEDS_OPERATOR, UNEXPECTED, Problem, classify
from ingest.writing.spool import Spool, SpoolFull
from ingest.writing.spool_quarantine import SetAside

log = logging.getLogger("iot.ingest")

_STOP = object()


class Settles(Protocol):
    """Where a writer releases the deliveries of a batch it made safe (``ingest.mqtt.settle.Settler``)."""

    def settle(self, tokens: Sequence[Token]) -> None: ...


class ForwardsLetters(Protocol):
    """Where a writer sends the items its store refused, with the deliveries they settle."""

    def dead_letter(self, letters: list[DeadLetter], tokens: list[Token]) -> None: ...


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
        destination: Destination,
        spool: Spool,
        settler: Settles,
        metrics: Metrics,
        *,
        dead_letters: ForwardsLetters | None = None,
        after_write: AfterWrite | None = None,
        retry_min: float = 0.5,
        retry_max: float = 15.0,
    ) -> None:
        self.destination = destination
        self.dest = dest = destination.name
        self.spool = spool
        self._settle = settler.settle
        self.metrics = metrics
        self._dead_letter = dead_letters.dead_letter if dead_letters is not None else None
        self._after_write = after_write
        self._retry_max = retry_max
        self._backoff = Backoff(retry_min, retry_max)
        self._next_try = 0.0
        self.problem: Problem | None = None  # the ongoing failure; None while the store takes writes
        self._spool_problem: Problem | None = None
        self.queue: queue.Queue[Any] = queue.Queue()
        self._ahead: Ahead | None = None  # the prepare stage, for a destination that prepares
        if isinstance(destination, StoreDestination) and destination.prepares:
            self._ahead = Ahead(dest, destination.prepare, self.queue)
        self._put = self._ahead.put if self._ahead is not None else self.queue.put  # where submit puts
        self.held: deque[Batch] = deque()
        self.idle = threading.Event()
        self.idle.set()
        self._thread = threading.Thread(target=self._run, name=f"writer-{dest}", daemon=True)
        metrics.gauge("iot_spool_bytes", lambda: spool.bytes, dest=dest)
        metrics.gauge("iot_spool_batches", lambda: spool.records, dest=dest)
        metrics.gauge("iot_held_batches", lambda: len(self.held), dest=dest)
        metrics.gauge("iot_store_up", lambda: 1.0 if self.up else 0.0, dest=dest)
        metrics.gauge("iot_spool_quarantined", lambda: sum(spool.quarantine.held().values()), dest=dest)

    @property
    def up(self) -> bool:
        return self.problem is None

    def health(self) -> dict[str, Any]:
        """State for /healthz: ``state`` ok/unavailable/needs_operator/unexpected and the reason.

        While the spool's quarantine holds anything an operator must look at it: the state is at
        least ``needs_operator`` and the reason says so, until the entries are removed."""
        p = self.problem or self._spool_problem
        held = self.spool.quarantine.held()
        reasons = [] if p is None else [p.describe()]
        if held:
            kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(held.items()))
            reasons.append(
                f"spool quarantine holds {sum(held.values())} set-aside entries ({kinds}) in "
                f"{self.dest}/quarantine under the spool directory: examine them, then remove them"
            )
        return {
            "up": self.problem is None,
            "state": p.kind if p is not None else NEEDS_OPERATOR if held else "ok",
            "reason": "; ".join(reasons) or None,
            "spooled_batches": self.spool.records,
            "held_batches": len(self.held),
            "quarantined": sum(held.values()),
        }

    def start(self) -> None:
        held = sum(self.spool.quarantine.held().values())
        if held:
            log.error(
                "%s spool quarantine holds %d set-aside entries from before (%s): examine them, then remove them",
                self.dest,
                held,
                self.spool.quarantine.dir,
            )
        if self._ahead is not None:
            self._ahead.start()
        self._thread.start()

    def submit(self, batch: Batch) -> None:
        self.idle.clear()
        self._put(batch)

    def stop(self, timeout: float) -> bool:
        """Process everything queued, try the spool once more, stop. True if nothing is held."""
        self._put(_STOP)  # behind every batch submitted before it (through the prepare stage too)
        self._thread.join(timeout)
        return not self.held and not self._thread.is_alive()

    @property
    def backlog(self) -> int:
        ahead = self._ahead.pending if self._ahead is not None else 0
        return self.spool.records + len(self.held) + self.queue.qsize() + ahead

    def _run(self) -> None:
        while True:
            try:
                if self._step():
                    return
            except Exception as e:  # last resort: a failure outside a write (spool I/O, a bug)
                self._fail(e)

    def _step(self) -> bool:
        """One pass: take a queued batch, replay what waits. True once told to stop."""
        self._report(self.spool.take_set_aside())
        waiting = self.spool.records or self.held
        timeout = max(0.0, self._next_try - time.monotonic()) if waiting else None
        try:
            item = self.queue.get(timeout=timeout)
        except queue.Empty:
            item = None
        if item is _STOP:
            try:
                self._drain_queue()
                self._next_try = 0.0
                self._replay()
            except Exception as e:
                self._fail(e)
            return True
        if item is not None:
            self._accept(item)
        if self.spool.records or self.held:
            self._replay()
        if self.queue.empty() and not self.spool.records and not self.held and not self._preparing:
            self.idle.set()
        return False

    @property
    def _preparing(self) -> bool:
        return self._ahead is not None and self._ahead.pending > 0

    def _drain_queue(self) -> None:
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP:
                self._accept(item)

    def _write(self, batch: Batch, prepared: Encoded | None = None) -> list[DeadLetter]:
        started = time.perf_counter()
        rejected = self.destination.write(batch, prepared)
        took = time.perf_counter() - started
        m = self.metrics
        m.inc("iot_batches_written_total", dest=self.dest)
        m.inc("iot_items_written_total", len(batch.items) - len(rejected), dest=self.dest)
        m.inc("iot_write_seconds_total", took, dest=self.dest)
        m.observe("iot_store_write_seconds", took, dest=self.dest)
        if batch.origins:  # received at of its oldest message (origins are in arrival order)
            m.observe("iot_publish_to_store_seconds", max(0.0, time.time() - batch.origins[0][2]), dest=self.dest)
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
        if self._after_write is not None:
            try:
                self._after_write.after_write(batch)
            except Exception:
                log.exception("observer failed on a %s batch", self.dest)

    def _accept(self, item: Batch | Ready) -> None:
        batch, prepared = (item.batch, item.prepared) if isinstance(item, Ready) else (item, None)
        self.metrics.inc("iot_batch_items_total", len(batch.items), dest=self.dest)
        if not self.spool.records and not self.held and time.monotonic() >= self._next_try:
            letters = self._try_write(batch, prepared)
            if letters is not None:
                self._finish(batch, letters)
                return
        self._to_spool(batch)

    def _try_write(self, batch: Batch, prepared: Encoded | None = None) -> list[DeadLetter] | None:
        """The one write path: write ``batch`` and return the letters for what the store refused;
        on failure, note it (backoff) and return None, the caller keeps the batch (spool or hold)."""
        try:
            letters = self._write(batch, prepared)
        except Exception as e:
            self._fail(e)
            return None
        self._recovered()
        return letters

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
        except Exception as e:  # the disk refuses: hold it unacknowledged (the broker keeps it)
            self._spool_failed(e)
            self.held.append(batch)
            return
        self._spool_problem = None
        self.metrics.inc("iot_spooled_batches_total", dest=self.dest)
        self._observe(batch)
        self._settle(batch.tokens)

    def _replay(self) -> None:
        if time.monotonic() < self._next_try:
            return
        while (record := self.spool.peek()) is not None:
            self._report(self.spool.take_set_aside())
            items, origins, activity = record
            letters = self._try_write(Batch(self.dest, items, origins, activity=activity))
            if letters is None:
                return
            if letters and self._dead_letter is not None:
                self._dead_letter(letters, [])
            self.spool.pop()
            self._report(self.spool.take_set_aside())
            self.metrics.inc("iot_replayed_batches_total", dest=self.dest)
            while self.held:  # room again: move held batches behind the spool, in order
                try:
                    self.spool.append(self.held[0].record())
                except SpoolFull:
                    break
                except Exception as e:
                    self._spool_failed(e)
                    break
                b = self.held.popleft()
                self._observe(b)
                self._settle(b.tokens)
        while self.held:
            b = self.held[0]
            letters = self._try_write(b)
            if letters is None:
                return
            self.held.popleft()
            self._finish(b, letters)

    def _report(self, entries: list[SetAside]) -> None:
        """Bytes the spool could not replay and set aside: an ERROR each, counted (health reads
        the quarantine folder itself)."""
        for e in entries:
            self.metrics.inc("iot_spool_corrupt_records_total", e.records, dest=self.dest, reason=e.kind.value)
            log.error(
                "%s spool: %s record(s) set aside (%s) from byte %d of segment %s: %s; its %d bytes are kept in %s, "
                "the intact records around it replay",
                self.dest,
                e.records,
                e.kind.value,
                e.offset,
                e.segment,
                e.detail,
                e.size,
                e.path,
            )

    def _fail(self, e: Exception) -> None:
        """A write (or the loop itself) failed: log once per episode, count, schedule the retry."""
        p = classify(e)
        self.metrics.inc("iot_store_errors_total", dest=self.dest, error=p.error)
        if not p.same(self.problem):
            if p.kind == UNEXPECTED:
                log.error(
                    "%s writer: unexpected %s: %s; keeping the data and retrying",
                    self.dest,
                    p.error,
                    p.message,
                    exc_info=e,
                )
            elif p.kind == NEEDS_OPERATOR:
                log.error(
                    "%s store refuses us and waiting will not fix it (operator action needed): %s: %s; "
                    "keeping the data and retrying every <=%gs",
                    self.dest,
                    p.error,
                    p.message,
                    self._retry_max,
                )
            else:
                log.warning("%s store unavailable, spooling: %s", self.dest, p.message)
            self.problem = p
        retry_after = getattr(e, "retry_after", None)
        self._next_try = time.monotonic() + self._backoff.failed(retry_after)

    def _spool_failed(self, e: Exception) -> None:
        p = classify(e)
        self.metrics.inc("iot_spool_errors_total", dest=self.dest, error=p.error)
        if not p.same(self._spool_problem):
            log.error("%s spool cannot take a batch (%s); holding it unacknowledged", self.dest, p.message)
        self._spool_problem = p

    def _recovered(self) -> None:
        if self.problem is not None:
            log.warning("%s store is back; replaying %d spooled batches", self.dest, self.spool.records)
        self.problem = None
        self._backoff.reset()
        self._next_try = 0.0


class ToDeadLetters:
    """Forwards refused items to the dead-letter writer, counting them by reason (what the
    dead-letter writer stores settles the deliveries they came from)."""

    def __init__(self, writer: Writer, counts: defaultdict[tuple[str, str], int]) -> None:
        if writer.dest != DEADLETTERS:
            raise ValueError(f"dead letters go to the {DEADLETTERS} writer, not {writer.dest}")
        self.writer = writer
        self.counts = counts

    def dead_letter(self, letters: list[DeadLetter], tokens: list[Token]) -> None:
        for letter in letters:
            self.counts[(letter.reason, "dead_lettered")] += 1
        self.writer.submit(Batch(DEADLETTERS, list(letters), tokens=tokens))
