"""The ingest daemon's lifecycle: start the parts of the pipeline in order, tick, stop them in order.

What the parts are and how a message goes through them is decided by whoever builds them (the
composition layer, ``iot/service.py``): a :class:`~ingest.mqtt.receiver.Receiver` hands each read's
deliveries to the :class:`~ingest.intake.Intake`, which routes them into batches for one
:class:`~ingest.writing.writer.Writer` per destination; a writer stores or spools a batch and settles its
deliveries through the :class:`~ingest.mqtt.settle.Settler`, which acknowledges them on the receiver.
This module only runs them: nothing here is called back by the parts.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Generic, TypeVar

from core.config import Settings
from core.directory import DeviceDirectory
from core.stores import DocumentStore, StoreUnavailable, TimeSeriesStore
from ingest.health import Health
from ingest.intake import Intake
from ingest.metrics import Metrics
from ingest.mqtt.acks import AckTracker
from ingest.mqtt.receiver import Receiver
from ingest.observers import StreamObserver
from ingest.steps import Steps
from ingest.writing.destinations import Destinations, DirectoryStore, LetterStore
from ingest.writing.writer import Writer

log = logging.getLogger("iot.ingest")

R = TypeVar("R", bound=DirectoryStore, covariant=True)


@dataclass
class Resources(Generic[R]):
    """The stores the daemon writes to, built at start-up by the composition layer and passed in.

    Generic in the registry's concrete type, so the composition layer keeps it (e.g. its engine).
    ``observers`` are the ones built with the stores (the composition layer may add its own)."""

    timeseries: TimeSeriesStore
    documents: DocumentStore
    registry: R
    deadletters: LetterStore
    observers: Sequence[StreamObserver] = field(default_factory=list)
    metrics: Metrics = field(default_factory=Metrics)

    def destinations(self) -> Destinations:
        return Destinations.of(self.timeseries, self.documents, self.registry, self.deadletters)


@dataclass(frozen=True)
class Pipeline:
    """Every part of a running pipeline, built and connected by the composition layer."""

    receiver: Receiver
    intake: Intake
    writers: Mapping[str, Writer]  # by destination; the dead-letter writer stops last
    directory: DeviceDirectory
    observers: Sequence[StreamObserver]
    destinations: Destinations
    steps: Steps
    health: Health
    acks: AckTracker
    metrics: Metrics
    counts: defaultdict[tuple[str, str], int]  # (kind or reason, received / dead_lettered) -> messages


class Daemon:
    """Runs a :class:`Pipeline`: ``run`` blocks until ``stop``, then stops consuming, flushes,
    acknowledges and disconnects. The ticker flushes due batches, refreshes the device directory
    every ``registry_refresh`` s and ticks the observers every ``offline_check_interval`` s."""

    def __init__(self, settings: Settings, pipeline: Pipeline) -> None:
        self.settings = settings
        self.pipeline = p = pipeline
        self.metrics, self.acks, self.message_counts = p.metrics, p.acks, p.counts
        self.connected = p.intake.subscribed
        self._stop = threading.Event()
        self._ticker_thread = threading.Thread(target=self._ticker, name="ticker", daemon=True)

    @property
    def step_problems(self) -> Mapping[str, Any]:
        return self.pipeline.steps.problems

    def health(self) -> tuple[bool, dict[str, Any]]:
        return self.pipeline.health.check()

    def _refresh_directory(self) -> None:
        directory = self.pipeline.directory
        try:
            directory.refresh()
        except StoreUnavailable as e:
            log.warning("registry unavailable, keeping %d cached devices: %s", len(directory), e)

    def _ticker(self) -> None:
        s, steps, p = self.settings, self.pipeline.steps, self.pipeline
        tick = min(0.05, s.flush_interval / 4, s.flush_idle / 4 or 0.05)  # a quiet end is seen within 1/4
        next_refresh = time.monotonic() + s.registry_refresh
        next_check = time.monotonic() + s.offline_check_interval
        while not self._stop.wait(tick):
            steps.run("flush", p.intake.flush_due)
            now = time.monotonic()
            if now >= next_refresh:
                next_refresh = now + s.registry_refresh
                steps.run("directory refresh", self._refresh_directory)
            if now >= next_check:
                next_check = now + s.offline_check_interval
                for o in p.observers:
                    steps.run(f"{type(o).__name__} tick", partial(_tick, o))

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self._refresh_directory()  # refuses an unmigrated schema; unreachable is fine (cache)
        for w in self.pipeline.writers.values():
            w.start()
        self._ticker_thread.start()
        self.pipeline.receiver.start(self.pipeline.intake)

    def stop(self) -> None:
        self._stop.set()

    def idle(self) -> bool:
        """Nothing buffered, queued, spooled or awaiting acknowledgement."""
        p = self.pipeline
        return (
            not p.intake.buffered
            and p.acks.outstanding == 0
            and all(w.idle.is_set() and not w.backlog for w in p.writers.values())
        )

    def run(self) -> int:
        """Start, block until :meth:`stop`, then stop consuming, flush, acknowledge, disconnect."""
        self.start()
        self._stop.wait()
        return self.shutdown()

    def shutdown(self, timeout: float = 60.0) -> int:
        p = self.pipeline
        self._stop.set()
        p.intake.close()
        deadline = time.monotonic() + timeout
        clean = True
        for w in p.writers.values():  # dead letters last: the others may still refuse items
            clean &= w.stop(max(1.0, deadline - time.monotonic()))
        if not clean:
            log.warning("some batches could not be stored or spooled; left unacknowledged for redelivery")
        p.receiver.stop()  # sends the acknowledgements still queued, DISCONNECTs, ends its thread
        for o in p.observers:
            try:
                o.close()
            except Exception:
                log.exception("observer close failed")
        for w in p.writers.values():
            w.spool.close()
        for d in p.destinations.all():
            d.close()
        log.info(
            "stopped: %d messages acknowledged, %d spooled batches kept for the next start",
            int(self.metrics.value("iot_messages_acked_total")),
            sum(w.spool.records for w in p.writers.values()),
        )
        return 0


def _tick(observer: StreamObserver) -> None:
    observer.tick(time.time())


def install_signal_handlers(daemon: Daemon) -> None:
    def handler(signum: int, _frame: Any) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        daemon.stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
