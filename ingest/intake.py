"""The intake: what the receiver calls with each read's deliveries (a :class:`~ingest.mqtt.session.Handler`).

It takes an acknowledgement token per QoS > 0 delivery, routes the read under one lock
(decode, directory check, batch: :class:`~ingest.routing.Router`), ignores retained replays
(settled at once), dead-letters a message routing failed on, and hands the batches that filled to
their writers. Connection events reset the acknowledgement tracker (through the :class:`Settler`)
and say whether the subscription holds (:attr:`subscribed`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Protocol

from core.model import Reason, Rejected
from ingest.metrics import Metrics
from ingest.mqtt.acks import AckTracker
from ingest.mqtt.packets import Oversized, Publish
from ingest.mqtt.session import BrokerProblem
from ingest.mqtt.settle import Settler
from ingest.routing import Batch, Router, Token
from ingest.steps import Steps

log = logging.getLogger("iot.ingest")
MESSAGE_STEP = "message handling"


class Submits(Protocol):
    """A destination's writer, as the intake sees it."""

    def submit(self, batch: Batch) -> None: ...


class Intake:
    def __init__(
        self,
        router: Router,
        acks: AckTracker,
        settler: Settler,
        writers: Mapping[str, Submits],
        steps: Steps,
        metrics: Metrics,
        broker: str = "the broker",
        flush_idle: float = 0.0,
    ) -> None:
        self.router = router
        self.acks = acks
        self.settler = settler
        self.writers = writers
        self.steps = steps
        self.metrics = metrics
        self.broker = broker  # for log lines only (no credentials)
        self.flush_idle = flush_idle  # seconds without a read after which buffered batches go (0: never)
        self._last_read = time.monotonic()  # when the last one came (quiet since then)
        self.lock = threading.Lock()  # the router is not thread-safe: receive thread vs ticker
        self.accepting = True
        self.subscribed = threading.Event()
        self.problem: BrokerProblem | None = None  # an operator must act on the broker connection (health)

    # -- the receiver's Handler (its thread) -----------------------------------------------------
    def on_connected(self, session_present: bool) -> None:
        self.settler.reset()
        self.metrics.inc("iot_broker_connects_total")
        log.info("connected to %s (session present: %s)", self.broker, session_present)

    def on_subscribed(self, reasons: list[int]) -> None:
        if all(r < 0x80 for r in reasons):
            self.subscribed.set()
        else:
            log.error("subscription refused: reason codes %s", [hex(r) for r in reasons])

    def on_connection_lost(self, reason: str) -> None:
        self.subscribed.clear()
        self.settler.reset()
        if self.accepting:
            self.metrics.inc("iot_broker_disconnects_total")

    def on_problem(self, problem: BrokerProblem | None) -> None:
        self.problem = problem  # the session logged it (once per episode)

    def on_messages(self, messages: list[Publish | Oversized]) -> None:
        """Route one read's deliveries under one lock acquisition; submit the batches that filled."""
        if not self.accepting:
            return  # not acknowledged: the broker redelivers them to the next session
        self._last_read = time.monotonic()
        full: list[Batch] = []
        retained: list[Token] = []
        failed: list[tuple[Publish, Token | None, Exception]] = []
        last_ok = False  # the last message handled in this read went through (clears a failing step)
        seq = self.acks.add_many([m.mid for m in messages if m.qos])  # tokens: seq, seq + 1, ...
        with self.lock:
            handle = self.router.handle
            for m in messages:
                token: Token | None = None
                if m.qos:
                    token, seq = seq, seq + 1
                if m.retain:  # a replay of the broker's retained store, not a new reading
                    if token is not None:
                        retained.append(token)
                    continue
                if isinstance(m, Oversized):  # discarded unread by the session: dead-letter it
                    b = self.router.oversized(m, token, time.time())
                    if b is not None:
                        full.append(b)
                    continue
                try:
                    b = handle(m.topic, m.payload, token, time.time_ns())
                except Exception as e:  # a bug past the decoder's own guard must not end the receiver
                    failed.append((m, token, e))
                    last_ok = False
                    continue
                last_ok = True
                if b is not None:
                    full.append(b)
        if retained:
            self.metrics.inc("iot_retained_ignored_total", len(retained))
            self.settler.settle(retained)
        for m, token, error in failed:
            b = self._unhandled(m, token, error)
            if b is not None:
                full.append(b)
        if last_ok:
            self.steps.succeeded(MESSAGE_STEP)
        for b in full:
            self.writers[b.dest].submit(b)

    def _unhandled(self, m: Publish, token: Token | None, e: Exception) -> Batch | None:
        """Dead-letter a message routing failed on (so its acknowledgement is not stuck), and
        report the failure like a failing ticker step."""
        self.steps.failed(MESSAGE_STEP, e)
        internal = Rejected(Reason.WRONG_TYPE, f"internal error ({type(e).__name__})")
        with self.lock:
            return self.router.reject(m.topic, m.payload, token, time.time(), internal)

    # -- the ticker and shutdown ------------------------------------------------------------------
    def flush_due(self) -> None:
        """Submit the batches older than the flush interval, and every buffered one once nothing has
        been read for ``flush_idle`` seconds (the end of a burst or a drained backlog lands at once
        instead of waiting out the interval)."""
        due: list[Batch] = []
        with self.lock:
            if self.flush_idle and self.router.buffers and time.monotonic() - self._last_read >= self.flush_idle:
                due = self.router.take_all()
            due += self.router.due(time.time())
        for b in due:
            self.writers[b.dest].submit(b)

    def close(self) -> None:
        """Stop taking deliveries (they stay unacknowledged) and submit everything buffered."""
        self.accepting = False
        with self.lock:
            rest = self.router.drain()
        for b in rest:
            self.writers[b.dest].submit(b)

    @property
    def buffered(self) -> bool:
        with self.lock:
            return bool(self.router.buffers)
