"""The notifier: drains the outbox outside the ingest path, with retries and reminders.

Lifecycle: ``Notifier(engine, secrets, guard=NetGuard(allowed))``; ``start()`` runs :meth:`run_once` every ``poll_s`` on
a daemon thread (or call ``run_once`` yourself); ``stop()`` finishes the current round. Any
number of notifiers (threads, daemons, hosts) may share one database: claims are exclusive and
reminders keyed. It never raises out of its thread: a database outage is logged and retried.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from registry.notify import outbox
from registry.notify.email import EmailSender
from registry.notify.netguard import NetGuard
from registry.notify.outbox import Delivery, Outcome, RetryPolicy
from registry.notify.webhook import WebhookSender

_rng = random.Random()  # jitter from its own generator, not the global one

log = logging.getLogger("iot.notify")


class Sender(Protocol):
    def send(self, d: Delivery, target: str, secret: str | None) -> Outcome: ...


def default_senders(timeout: float = 10.0, guard: NetGuard | None = None) -> dict[str, Sender]:
    """The senders per channel kind; ``guard`` (default: public addresses only) vets every target."""
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
    ) -> None:
        self.engine = engine
        self.secrets = dict(secrets or {})
        self.policy = policy
        self.senders = dict(senders or default_senders(timeout, guard))
        self.poll_s = poll_s
        self.reminder_every_s = reminder_every_s
        self.batch = batch
        # a claim outlives the slowest batch, so no other worker takes a row mid-send
        self.lease_s = max(policy.lease_s, batch * (timeout + 5))
        self.worker = worker or f"{os.uname().nodename[:40]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.rand = rand
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_reminders = 0.0
        self.sent = 0
        self.failed_attempts = 0

    def _secret(self, name: str | None) -> str | None:
        if not name:
            return None
        v = self.secrets.get(name)
        if v is None:
            return None
        return str(v.get_secret_value() if hasattr(v, "get_secret_value") else v)

    def deliver(self, d: Delivery) -> Outcome:
        """Send one notification; every problem becomes a failed :class:`Outcome`."""
        sender = self.senders.get(d.kind)
        if sender is None:
            return Outcome(False, None, f"unknown channel kind {d.kind!r}")
        target = d.target
        if target.startswith(SECRET_URL):
            name = target[len(SECRET_URL) :]
            resolved = self._secret(name)
            if resolved is None:
                return Outcome(False, None, f"secret {name!r} is not set (IOT_NOTIFY_SECRETS)")
            target = resolved
        secret = self._secret(d.secret_name)
        if d.secret_name and secret is None:
            return Outcome(False, None, f"secret {d.secret_name!r} is not set (IOT_NOTIFY_SECRETS)")
        try:
            return sender.send(d, target, secret)
        except Exception as e:  # a sender bug must not kill the notifier
            log.exception("sender %s failed", d.kind)
            return Outcome(False, None, f"{type(e).__name__}: {e}")

    def run_once(self, now: datetime | None = None) -> int:
        """Queue due reminders, then claim, send and record due notifications; returns attempts."""
        mono = time.monotonic()
        if mono >= self._next_reminders:
            self._next_reminders = mono + self.reminder_every_s
            with Session(self.engine) as session, session.begin():
                outbox.enqueue_reminders(session, now or datetime.now(UTC))
        done = 0
        while not self._stop.is_set():
            claimed = outbox.claim(self.engine, self.worker, now or datetime.now(UTC), self.batch, self.lease_s)
            if not claimed:
                break
            for d in claimed:
                result = self.deliver(d)
                status = outbox.record(
                    self.engine, d, result, self.worker, now or datetime.now(UTC), self.policy, self.rand
                )
                done += 1
                if result.ok:
                    self.sent += 1
                else:
                    self.failed_attempts += 1
                    log.warning("notification %s attempt %d: %s (%s)", d.key, d.attempts + 1, result.error, status)
        return done

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception as e:  # database down: try again next round
                log.warning("notifier round failed: %s", str(e).splitlines()[0] if str(e) else type(e).__name__)
            self._stop.wait(self.poll_s)

    def start(self) -> Notifier:
        self._thread = threading.Thread(target=self._run, name="notifier", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
