"""The daemon's alert hook: feeds the pure engine from the stream and writes its transitions.

Lifecycle: ``AlertObserver(engine, directory)``; ``load()`` at start-up (rules, open alerts);
then ``observe``/``status``/``tick`` from any thread (serialised by a lock); ``close()``.
It never raises into the daemon: a database failure keeps the pending transitions (bounded)
and retries them on the next call.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from core.directory import DeviceDirectory
from core.metricdefs import Counts, NoCounts
from core.model import Point, StatusChange
from registry.alerts import store
from registry.alerts.engine import Devices, RuleEngine, Transition
from registry.alerts.rules import OPEN, RESOLVE
from registry.db import unreachable

log = logging.getLogger(__name__)

MAX_PENDING = 100_000


class AlertObserver:
    """A :class:`ingest.observers.StreamObserver` that raises, updates and resolves alerts."""

    def __init__(
        self,
        engine: Engine,
        directory: DeviceDirectory,
        clock: Callable[[], float] = time.time,
        reload_interval: float = 5.0,
        counts: Counts | None = None,
    ) -> None:
        self.db = engine
        self.counts = counts or NoCounts()  # alerts opened / resolved
        self.directory = directory
        self.clock = clock
        self.reload_interval = reload_interval
        self.rules = RuleEngine(started=clock())
        self._lock = threading.Lock()
        self._pending: list[Transition] = []
        self._loaded_at: float | None = None
        self.dropped = 0  # transitions lost to a long database outage

    def load(self) -> None:
        """Read the enabled rules and the open alerts; raises if the database is unusable."""
        with self._lock:
            self._reload(self.clock())

    def load_at_start(self) -> None:
        """:meth:`load`, where an unreachable registry is no reason not to start: the rules and open
        alerts load at the first :meth:`tick` it answers (an unusable schema still raises)."""
        try:
            self.load()
        except DBAPIError as e:
            if (why := unreachable(e)) is None:
                raise
            log.warning("alerts: registry unreachable at start (%s): rules load once it answers", why)

    def _reload(self, now: float) -> None:
        with Session(self.db) as s:
            rules = store.load_rules(s)
            open_alerts = store.load_open(s)
        first = self._loaded_at is None
        self.rules.set_rules(rules)
        self.rules.sync_open({(a.rule_id, a.device_id) for a in open_alerts})
        known = self.rules.firing()
        for a in open_alerts:
            if first or (a.rule_id, a.device_id) not in known:
                self.rules.restore(a.rule_id, a.device_id, a.last_value, a.last_seen)
        self._loaded_at = now

    def _devices(self) -> Devices:
        try:
            return self.directory.current()
        except Exception:
            log.exception("alerts: device directory unavailable")
            return {}

    def _flush(self, transitions: list[Transition]) -> None:
        self._pending.extend(transitions)
        if not self._pending:
            return
        try:
            with Session(self.db) as s, s.begin():
                store.apply_transitions(s, self._pending)
        except Exception as e:
            if len(self._pending) > MAX_PENDING:
                self.dropped += len(self._pending) - MAX_PENDING
                del self._pending[: len(self._pending) - MAX_PENDING]
            log.warning(
                "alerts: cannot write %d transition(s), will retry: %s",
                len(self._pending),
                str(e).splitlines()[0] if str(e) else type(e).__name__,
            )
            return
        opened = sum(1 for t in self._pending if t.action == OPEN)
        resolved = sum(1 for t in self._pending if t.action == RESOLVE)
        self._pending = []
        if opened:
            self.counts.inc("iot_alerts_opened_total", opened)
        if resolved:
            self.counts.inc("iot_alerts_resolved_total", resolved)

    def observe(self, points: Sequence[Point], now: float) -> None:
        with self._lock:
            try:
                self._flush(self.rules.observe(points, now, self._devices()))
            except Exception:
                log.exception("alerts: evaluation failed for a batch of %d point(s)", len(points))

    def status(self, changes: Sequence[StatusChange], now: float) -> None:
        with self._lock:
            try:
                self.rules.announced(changes)
                self._flush([])  # retries what a database outage left pending
            except Exception:
                log.exception("alerts: status evaluation failed")

    def tick(self, now: float) -> None:
        with self._lock:
            try:
                if self._loaded_at is None or now - self._loaded_at >= self.reload_interval:
                    self._flush([])  # write what is pending before comparing with the database
                    if not self._pending:
                        self._reload(now)
                self._flush(self.rules.tick(now, self._devices()))
            except Exception as e:
                log.warning("alerts: tick failed: %s", str(e).splitlines()[0] if str(e) else e)

    def close(self) -> None:
        with self._lock:
            self._flush([])
