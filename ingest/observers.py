"""Hooks the daemon calls with what it has stored: alert evaluation, last-seen tracking."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

from core.model import Point, StatusChange
from ingest.routing import Batch


class StreamObserver(Protocol):
    """Sees every batch after it is durably handled (written or spooled).

    Lifecycle: built at daemon start-up with its resources passed in; ``observe`` is called
    from the time-series writer thread for each batch, ``status`` for status changes, ``tick``
    every ``offline_check_interval`` seconds from a timer thread; ``close`` once at shutdown.
    Implementations must not raise for bad data and must be cheap per point.
    """

    def observe(self, points: Sequence[Point], now: float) -> None: ...
    def status(self, changes: Sequence[StatusChange], now: float) -> None: ...
    def tick(self, now: float) -> None: ...
    def close(self) -> None: ...


class AfterWrite(Protocol):
    """A writer's hook, called with each batch once it is durably handled (written or spooled)."""

    def after_write(self, batch: Batch) -> None: ...


class PointsObserved:
    """The time-series writer's hook: every observer sees the points."""

    def __init__(self, observers: Sequence[StreamObserver]) -> None:
        self.observers = tuple(observers)

    def after_write(self, batch: Batch) -> None:
        now = time.time()
        for o in self.observers:
            o.observe(batch.items, now)


class StatusObserved:
    """The registry writer's hook: every observer sees the status changes."""

    def __init__(self, observers: Sequence[StreamObserver]) -> None:
        self.observers = tuple(observers)

    def after_write(self, batch: Batch) -> None:
        if batch.items:
            now = time.time()
            for o in self.observers:
                o.status(batch.items, now)
