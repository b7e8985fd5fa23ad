"""The alert-evaluator role: with ``--workers N > 1``, one process evaluates every alert rule.

Workers share the stream (``$share/...``), so with rules evaluated per worker no worker sees all of
a device's messages and holds, rates of change and no-data checks break. The supervisor therefore
runs workers with ``IOT_ROLE=ingest`` (store, no alert observer) and one evaluator with
``IOT_ROLE=alerts``: its own client id ``{client_id}-alerts`` (broker account ``{user}-alerts``
with ``IOT_BROKER_ACCOUNTS=own``), its own persistent session and a
NON-shared subscription to the kinds alerts read (``{root}/+/telemetry|metrics|events|status``).
It decodes and routes with the same decoder and router as a worker, but its stores discard
(:class:`Discard`) and its registry only reads the directory (:class:`DirectoryOnly`), so it only
feeds the alert observer; deliveries are acknowledged after they were evaluated, in order. It sees
every message of a device in the order the broker received it, exactly like one worker.

Lifecycle: the supervisor calls :func:`ensure_session` before any worker starts (so the broker
queues for the evaluator everything the workers get), then runs the process with
:func:`evaluator_env`; ``iot ingest run`` with ``IOT_ROLE=alerts`` calls :func:`build_evaluator`.
A crashed evaluator is restarted by the supervisor under the same client id: its session kept
what it missed and redelivers its unacknowledged messages; open alerts are in the database.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from core.broker_accounts import EVALUATOR
from core.config import Settings
from core.model import GatewayClaim, Kind, StatusChange
from ingest.decoding.mappings import load_mappings
from ingest.decoding.sparkplug.rule import SUBSCRIPTIONS, SparkplugRule
from ingest.mqtt.broker import BrokerAddress, own_account, parse_broker_url
from ingest.mqtt.options import session_options
from ingest.mqtt.packets import Oversized, Publish
from ingest.mqtt.session import BrokerProblem, Options, Session
from registry.directory import RegistryStore

log = logging.getLogger("iot.ingest")

ALERT_KINDS = (Kind.TELEMETRY, Kind.METRICS, Kind.EVENTS, Kind.STATUS)
"""What alert rules read: points (telemetry, metrics, events) and online announcements (no-data)."""
SUFFIX = EVALUATOR


def client_id(settings: Settings) -> str:
    return f"{settings.client_id}-{SUFFIX}"


def filters(topic_root: str, mapped: Sequence[str] = ()) -> list[tuple[str, int]]:
    """The evaluator's own (not shared) QoS 1 subscriptions: the contract's alert kinds plus the
    filters of the mappings (``mapped``, the topic rules' filters besides the contract's)."""
    own = [f"{topic_root}/+/{k.value}" for k in ALERT_KINDS]
    return [(f, 1) for f in own + [m for m in mapped if m != f"{topic_root}/#"]]


def evaluator_env(settings: Settings, base: Mapping[str, str], n: int) -> dict[str, str]:
    """The evaluator's environment, from a worker's (``base``): own identity, no share group, own
    spool, metrics on ``metrics_port + n`` (after the ``n`` workers)."""
    env = dict(base)
    env["IOT_ROLE"] = SUFFIX
    env["IOT_CLIENT_ID"] = client_id(settings)
    env["IOT_BROKER_ACCOUNT"] = SUFFIX if settings.broker_accounts == "own" else ""
    env["IOT_SHARE_GROUP"] = ""
    env["IOT_SPOOL_DIR"] = str(settings.resolved_spool_dir() / SUFFIX)
    env["IOT_METRICS_PORT"] = str(settings.metrics_port + n if settings.metrics_port else 0)
    return env


class Discard:
    """A store that accepts and drops everything: the evaluator stores nothing (the workers do)."""

    def connect(self) -> None:
        pass

    def write(self, items: Sequence[Any]) -> list[tuple[Any, str]]:
        return []

    def close(self) -> None:
        pass


class DirectoryOnly(RegistryStore):
    """The registry as the evaluator uses it: the device directory is read; activity, firmware
    and auto-registration are the workers' to write, so they are dropped here."""

    def register(self, devices: Iterable[tuple[str, str]], gateways: Mapping[str, str] | None = None) -> None:
        pass

    def record_claims(self, claims: Sequence[GatewayClaim]) -> None:
        pass

    def record_activity(self, last_seen: Mapping[str, float], status: Sequence[StatusChange]) -> None:
        pass

    def record_firmware(self, versions: Mapping[str, str]) -> None:
        pass


def evaluator_options(broker: BrokerAddress, settings: Settings, client: str) -> Options:
    """A worker's session options with the evaluator's client id and own subscriptions."""
    rules = load_mappings(settings.mappings, settings.topic_root) if settings.mappings else []
    mapped = [r.filter for r in rules]
    if settings.sparkplug and not any(isinstance(r, SparkplugRule) for r in rules):
        mapped += SUBSCRIPTIONS  # Sparkplug readings feed alert rules too
    return dataclasses.replace(
        session_options(broker, settings), client_id=client, subscriptions=filters(settings.topic_root, mapped)
    )


class _Subscribed:
    """Handler that only waits for SUBACK and acknowledges nothing (what is queued stays queued)."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.refused: list[int] = []

    def on_connected(self, session_present: bool) -> None:
        pass

    def on_subscribed(self, reasons: list[int]) -> None:
        self.refused = [r for r in reasons if r >= 0x80]
        self.done.set()

    def on_messages(self, messages: list[Publish | Oversized]) -> None:
        pass  # not acknowledged: redelivered to the evaluator when it connects

    def on_connection_lost(self, reason: str) -> None:
        pass

    def on_problem(self, problem: BrokerProblem | None) -> None:
        pass  # the session logs it; this attempt ends at its deadline and is retried


def ensure_session(settings: Settings, stop: threading.Event, attempt_s: float = 10.0) -> bool:
    """Create (or resume) the evaluator's persistent session and subscription before the workers
    start, so the broker queues for it every message a worker gets. Retries until it succeeds or
    ``stop`` is set; False if stopped first."""
    broker = parse_broker_url(
        settings.broker_url,
        password=settings.broker_password.get_secret_value() if settings.broker_password else None,
        embedded_port=settings.embedded_broker_port,
    )
    if settings.broker_accounts == "own":  # the evaluator's own account, as it will connect
        broker = own_account(broker, SUFFIX)
    opts = evaluator_options(broker, settings, client_id(settings))
    while not stop.is_set():
        handler = _Subscribed()
        session = Session(opts, handler)
        session.start()
        try:
            ok = handler.done.wait(attempt_s)
        finally:
            session.stop()
        if ok and not handler.refused:
            log.info("alert evaluator session %s subscribed to %s", opts.client_id, [f for f, _ in opts.subscriptions])
            return True
        why = f"refused {[hex(r) for r in handler.refused]}" if ok else f"no SUBACK within {attempt_s:g} s"
        log.warning("alert evaluator session not ready (%s); retrying", why)
        stop.wait(1.0)
    return False
