"""The notifier: drains the outbox outside the ingest path, with retries, reminders and damping.

Lifecycle: ``Notifier(engine, secrets, guard=NetGuard(allowed))``; ``start()`` dispatches every ``poll_s`` on a daemon
thread (or call :meth:`run_once` yourself); ``stop()`` lets attempts in flight end (each within
its deadline). Any number of notifiers (threads, daemons, hosts) may share one database: claims
are exclusive and reminders keyed. It never raises out of its thread: a database outage is logged
and retried.

Isolation: each channel is drained by its own task on a bounded pool (``channels_at_once``), one
notification at a time, and a channel with an attempt in flight (here or on another notifier) is
skipped until it ends, so a slow or dead receiver delays only its own channel. Each attempt has
one overall deadline (``timeout``: connect, TLS, sending, reading the reply;
:mod:`registry.notify.deadline`) shorter than its claim lease, so no other worker takes a row
mid-send. A channel sends at most ``per_channel_per_minute`` notifications a minute (the rest wait,
due); a flapping (rule, device) is damped per :mod:`registry.notify.damping`.

Every target is vetted by the ``guard`` (:mod:`registry.notify.netguard`): public addresses only, unless
allowed by ``IOT_NOTIFY_ALLOWED_NETWORKS``; redirects are not followed.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core.metricdefs import Counts, NoCounts
from registry.notify import damping, outbox
from registry.notify.email import EmailSender
from registry.notify.netguard import NetGuard
from registry.notify.outbox import AttemptResult, Delivery, RetryPolicy
from registry.notify.webhook import WebhookSender

_rng = random.Random()  # jitter from its own generator, not the global one

log = logging.getLogger("iot.notify")


LEASE_MARGIN_S = 5.0
"""A claim lease outlasts its attempt's deadline by this much (time to record the outcome)."""


class Sender(Protocol):
    """Sends one notification; returns (never raises) once it is done or its deadline has passed."""

    def send(self, d: Delivery, target: str, secret: str | None) -> AttemptResult: ...


def default_senders(timeout: float = 10.0, guard: NetGuard | None = None) -> dict[str, Sender]:
    """The transports, each attempt bounded by one overall deadline of ``timeout`` seconds; ``guard``
    (default: public addresses only) vets every target."""
    g = guard or NetGuard()
    return {
        "webhook": WebhookSender(timeout=timeout, guard=g),
        "slack": WebhookSender(slack=True, timeout=timeout, guard=g),
        "email": EmailSender(timeout=timeout, guard=g),
    }


SECRET_URL = "secret:"
"""A channel target ``secret:NAME`` takes the URL itself from the secret (Slack webhook URLs are secrets)."""


class Notifier:
    def __init__(
        self,
        engine: Engine,
        secrets: Mapping[str, Any] | None = None,
        *,
        policy: RetryPolicy = RetryPolicy(),
        senders: Mapping[str, Sender] | None = None,
        poll_s: float = 1.0,
        reminder_every_s: float = 30.0,
        batch: int = 10,
        timeout: float = 10.0,
        worker: str | None = None,
        rand: Callable[[], float] = _rng.random,
        guard: NetGuard | None = None,
        damping_window_s: float = 300.0,
        per_channel_per_minute: int = 60,
        channels_at_once: int = 8,
        counts: Counts | None = None,
    ) -> None:
        self.engine = engine
        self.counts = counts or NoCounts()  # sent / failed / suppressed, for /metrics
        self.secrets = dict(secrets or {})
        self.policy = policy
        self.senders = dict(senders or default_senders(timeout, guard))
        self.poll_s = poll_s
        self.reminder_every_s = reminder_every_s
        self.batch = batch  # notifications a channel's task sends before it yields its pool thread
        self.timeout = timeout  # the overall deadline of one attempt
        # one row is claimed per attempt: its lease outlives the attempt's deadline
        self.lease_s = max(policy.lease_s, timeout + LEASE_MARGIN_S)
        self.damping_window_s = damping_window_s
        self.per_channel_per_minute = per_channel_per_minute
        self.worker = worker or f"{os.uname().nodename[:40]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.rand = rand
        self._stop = threading.Event()
        self._wake = threading.Event()  # a channel's task stopped at ``batch`` with more due: dispatch now
        self._thread: threading.Thread | None = None
        self._next_reminders = 0.0
        self._pool = ThreadPoolExecutor(max_workers=max(1, channels_at_once), thread_name_prefix="notify")
        self._inflight: dict[int, Future[int]] = {}
        self._lock = threading.RLock()
        self.sent = 0
        self.failed_attempts = 0
        self.suppressed = 0

    def _secret(self, name: str | None) -> str | None:
        if not name:
            return None
        v = self.secrets.get(name)
        if v is None:
            return None
        return str(v.get_secret_value() if hasattr(v, "get_secret_value") else v)

    def deliver(self, d: Delivery) -> AttemptResult:
        """Send one notification; every problem becomes a failed :class:`AttemptResult`."""
        sender = self.senders.get(d.kind)
        if sender is None:
            return AttemptResult(False, None, f"unknown channel kind {d.kind!r}")
        target = d.target
        if target.startswith(SECRET_URL):
            name = target[len(SECRET_URL) :]
            resolved = self._secret(name)
            if resolved is None:
                return AttemptResult(False, None, f"secret {name!r} is not set (IOT_NOTIFY_SECRETS)")
            target = resolved
        secret = self._secret(d.secret_name)
        if d.secret_name and secret is None:
            return AttemptResult(False, None, f"secret {d.secret_name!r} is not set (IOT_NOTIFY_SECRETS)")
        try:
            return sender.send(d, target, secret)
        except Exception as e:  # a sender bug must not kill the notifier
            log.exception("sender %s failed", d.kind)
            return AttemptResult(False, None, f"{type(e).__name__}: {e}")

    def _periodic(self, now: datetime | None) -> None:
        """Every ``reminder_every_s``: queue due reminders, announce held-back alerts still open."""
        mono = time.monotonic()
        if mono < self._next_reminders:
            return
        self._next_reminders = mono + self.reminder_every_s
        at = now or datetime.now(UTC)
        with Session(self.engine) as session, session.begin():
            outbox.enqueue_reminders(session, at)
            damping.flush(session, at, self.damping_window_s)

    def _rate_limited(self, channel_id: int, now: datetime) -> bool:
        if self.per_channel_per_minute <= 0:
            return False
        sent = outbox.sent_since(self.engine, channel_id, now - timedelta(minutes=1))
        return sent >= self.per_channel_per_minute

    def _drain(self, channel_id: int, now: datetime | None) -> int:
        """One channel's task: claim, send and record its due rows one at a time (up to ``batch``)."""
        done = 0
        while done < self.batch and not self._stop.is_set():
            at = now or datetime.now(UTC)
            if self._rate_limited(channel_id, at):
                break  # the rest stay due; the channel is looked at again next round
            claimed = outbox.claim(
                self.engine, self.worker, at, 1, self.lease_s, channel_id=channel_id, damping_s=self.damping_window_s
            )
            with self._lock:
                self.suppressed += claimed.suppressed
            if claimed.suppressed:
                self.counts.inc("iot_notifications_suppressed_total", claimed.suppressed)
            if not claimed.deliveries:
                if claimed.suppressed:
                    continue
                break
            for d in claimed.deliveries:
                result = self.deliver(d)
                status = outbox.record(
                    self.engine, d, result, self.worker, now or datetime.now(UTC), self.policy, self.rand
                )
                done += 1
                with self._lock:
                    if result.ok:
                        self.sent += 1
                    else:
                        self.failed_attempts += 1
                self.counts.inc(
                    "iot_notifications_sent_total" if result.ok else "iot_notifications_failed_total", channel=d.kind
                )
                if not result.ok:
                    log.warning("notification %s attempt %d: %s (%s)", d.key, d.attempts + 1, result.error, status)
        return done

    def _finished(self, channel_id: int, f: Future[int]) -> None:
        with self._lock:
            if self._inflight.get(channel_id) is f:
                del self._inflight[channel_id]
        e = f.exception() if not f.cancelled() else None
        if e is not None:  # database down: the channel is tried again next round
            log.warning("notifier channel %d: %s", channel_id, str(e).splitlines()[0] if str(e) else type(e).__name__)
        elif not f.cancelled() and f.result() >= self.batch:
            self._wake.set()

    def _dispatch(self, now: datetime | None) -> list[Future[int]]:
        """Start a task for each channel with due rows and no attempt in flight."""
        started: list[Future[int]] = []
        for channel_id in outbox.channels_due(self.engine, now or datetime.now(UTC)):
            with self._lock:
                if channel_id in self._inflight or self._stop.is_set():
                    continue
                f = self._pool.submit(self._drain, channel_id, now)
                self._inflight[channel_id] = f
            f.add_done_callback(functools.partial(self._finished, channel_id))
            started.append(f)
        return started

    def run_once(self, now: datetime | None = None) -> int:
        """One round: queue due reminders, then each channel with due rows sends them (up to ``batch``
        each, channels side by side); returns the attempts made once every channel's task is done."""
        self._periodic(now)
        return sum(f.result() for f in self._dispatch(now))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self._periodic(None)
                self._dispatch(None)  # does not wait: a slow channel's task goes on by itself
            except Exception as e:  # database down: try again next round
                log.warning("notifier round failed: %s", str(e).splitlines()[0] if str(e) else type(e).__name__)
            self._wake.wait(self.poll_s)

    def start(self) -> Notifier:
        self._thread = threading.Thread(target=self._run, name="notifier", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop dispatching; tasks end after their attempt in flight (each bounded by its deadline)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)
