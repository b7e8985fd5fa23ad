"""Hooks the daemon calls with what it has stored: alert evaluation, last-seen tracking."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from core.model import Point, StatusChange


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
