"""The ingest daemon: MQTT in, batches out to the stores, PUBACK only after data is safe."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Generic, TypeVar

import paho.mqtt.client as mqtt

from core.config import Settings
from core.model import DeadLetter, Decoded, DeviceEntry, Reason
from core.stores import DocumentStore, StoreUnavailable, TimeSeriesStore
from ingest.acks import AckTracker
from ingest.broker import BrokerAddress, make_client, subscribe_ingest
from ingest.destinations import Destination, Destinations, DirectoryStore, LetterStore
from ingest.failures import UNEXPECTED, Problem, classify
from ingest.metrics import Metrics
from ingest.mqtt.packets import Oversized, Publish
from ingest.mqtt.session import Session
from ingest.observers import AfterWrite, PointsObserved, StatusObserved, StreamObserver
from ingest.receive import session_options, tune_gc
from ingest.routing import DEADLETTERS, DESTINATIONS, REGISTRY, TIMESERIES, Batch, Router, Token
from ingest.spool import Spool
from ingest.writer import Writer

log = logging.getLogger("iot.ingest")
MESSAGE_STEP = "message handling"


R = TypeVar("R", bound=DirectoryStore, covariant=True)


@dataclass
class Resources(Generic[R]):
    """The stores the daemon writes to, built at start-up by the composition layer and passed in.

    Generic in the registry's concrete type, so the composition layer keeps it (e.g. its engine)."""

    timeseries: TimeSeriesStore
    documents: DocumentStore
    registry: R
    deadletters: LetterStore
    observers: Sequence[StreamObserver] = field(default_factory=list)
    metrics: Metrics = field(default_factory=Metrics)

    def destinations(self) -> Destinations:
        return Destinations.of(self.timeseries, self.documents, self.registry, self.deadletters)


class Daemon:
    """Wires the pure router to the MQTT session, the writers and the timers. ``run`` blocks until ``stop``.

    Each destination (``destinations``, by default built from ``res``) gets one :class:`Writer`
    with its own spool; the observers see what the time-series and registry writers handled.
    The receive path is the native :class:`~ingest.mqtt.session.Session` (``IOT_MQTT_CLIENT=native``,
    the default; the daemon is its handler) or paho (``paho``).
    """

    def __init__(
        self,
        settings: Settings,
        broker: BrokerAddress,
        res: Resources[DirectoryStore],
        decode: Callable[[str, bytes, int], Decoded],
        destinations: Destinations | None = None,
    ) -> None:
        self.settings, self.broker, self.res, self.metrics = settings, broker, res, res.metrics
        self.destinations = destinations or res.destinations()
        self.acks = AckTracker()
        self.lock = threading.Lock()
        self.accepting = True
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._directory: Mapping[str, DeviceEntry] = {}
        self.step_problems: dict[str, Problem] = {}  # ticker steps failing now, by step name
        self.message_counts: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.router = Router(
            decode,
            batch_size=settings.batch_size,
            flush_interval=settings.flush_interval,
            max_letter_bytes=settings.max_payload_bytes,
            directory=self.directory,
            policy=settings.unknown_devices,
            counts=self.message_counts,
        )
        hooks: dict[str, AfterWrite] = {TIMESERIES: PointsObserved(res), REGISTRY: StatusObserved(res)}
        self.writers = {d.name: self._writer(d, hooks.get(d.name)) for d in self.destinations.all()}
        self.native = settings.mqtt_client == "native"
        self._ack_lock = threading.Lock()  # orders settling against a connection reset (native)
        self.session = Session(session_options(broker, settings), self)
        self.client, self._connect_kwargs = self._paho_client()
        self._register_metrics()

    def _writer(self, destination: Destination, after_write: AfterWrite | None) -> Writer:
        """One writer with its own share of the spool; refused items go to the dead-letter writer."""
        name = destination.name
        per_dest = max(1 << 20, self.settings.spool_max_bytes // len(DESTINATIONS))
        return Writer(
            destination,
            Spool(self.settings.resolved_spool_dir() / name, per_dest),
            self._settle,
            self.metrics,
            dead_letter=self._dead_letter if name != DEADLETTERS else None,
            after_write=after_write,
        )

    def _paho_client(self) -> tuple[mqtt.Client, dict[str, Any]]:
        """The paho receive path (``IOT_MQTT_CLIENT=paho``); built either way, started only then."""
        client, kwargs = make_client(
            self.broker,
            self.settings.client_id,
            persistent=True,
            manual_ack=True,
            receive_maximum=self.settings.receive_maximum,
        )
        client.reconnect_delay_set(1, 30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client, kwargs

    def _register_metrics(self) -> None:
        m = self.metrics
        m.gauge("iot_unacked_messages", lambda: self.acks.outstanding)
        m.gauge("iot_broker_subscribed", lambda: 1.0 if self.connected.is_set() else 0.0)
        m.collectors.append(self._collect)
        m.healthy = self.health

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy: subscribed to the broker, every store taking writes (not spooling) and no
        daemon step failing. ``reasons`` says in one line each what is wrong."""
        stores = {d: w.health() for d, w in self.writers.items()}
        steps = dict(self.step_problems)
        reasons = [] if self.connected.is_set() else ["broker: not subscribed (reconnecting)"]
        reasons += [f"{d}: {s['reason']}" for d, s in stores.items() if s["reason"]]
        reasons += [f"{name}: {p.describe()}" for name, p in steps.items()]
        ok = not reasons
        return ok, {
            "broker": "subscribed" if self.connected.is_set() else "disconnected",
            "unacked": self.acks.outstanding,
            "stores": stores,
            "steps": {name: p.describe() for name, p in steps.items()},
            "reasons": reasons,
        }

    # -- accounting -------------------------------------------------------------------------
    def _count(self, kind: str, outcome: str) -> None:
        self.message_counts[(kind, outcome)] += 1

    def _collect(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for (kind, outcome), n in list(self.message_counts.items()):
            name = "iot_messages_dead_lettered_total" if outcome == "dead_lettered" else "iot_messages_received_total"
            label = "reason" if outcome == "dead_lettered" else "kind"
            out[f'{name}{{{label}="{kind}"}}'] = n
        return out

    # -- paho callbacks (network thread) ------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, reason: Any, _p: Any = None) -> None:
        if reason.is_failure:
            log.error("broker refused connection: %s", reason)
            return
        self.acks.reset()
        subscribe_ingest(client, f"{self.settings.topic_root}/#")
        self.metrics.inc("iot_broker_connects_total")
        log.info("connected to %s (session present: %s)", self.broker, getattr(flags, "session_present", "?"))

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, reasons: Any, _p: Any = None) -> None:
        if all(not r.is_failure for r in reasons):
            self.connected.set()
        else:
            log.error("subscription refused: %s", reasons)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        self.connected.clear()
        self.acks.reset()
        if not self._stop.is_set():
            self.metrics.inc("iot_broker_disconnects_total")
            log.warning("broker connection lost (%s); reconnecting", reason)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if not self.accepting:
            return  # not acknowledged: the broker redelivers it to the next session
        if msg.retain:  # a replay of the broker's retained store, not a new reading (broker.subscribe_ingest)
            if msg.qos:
                self._settle([self.acks.add(msg.mid)])
            self.metrics.inc("iot_retained_ignored_total")
            return
        token = self.acks.add(msg.mid) if msg.qos else None
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = msg._topic.decode("utf-8", "replace")
        payload = bytes(msg.payload)
        try:
            with self.lock:
                full = self.router.handle(topic, payload, token, time.time_ns())
        except Exception as e:  # a bug past the decoder's own guard must not end paho's thread
            full = self._unhandled(topic, payload, token, e)
        else:
            if MESSAGE_STEP in self.step_problems:
                self._guarded(MESSAGE_STEP, lambda: None)
        if full is not None:
            self.writers[full.dest].submit(full)

    def _unhandled(self, topic: str, payload: bytes, token: Token | None, e: Exception) -> Batch | None:
        """Dead-letter a message routing failed on (so its acknowledgement is not stuck), and
        report the failure like a failing ticker step."""
        self._guarded(MESSAGE_STEP, partial(_reraise, e))
        now = time.time()
        parts = topic.split("/")
        letter = DeadLetter(
            Reason.WRONG_TYPE,
            topic,
            payload,
            now,
            f"internal error ({type(e).__name__})",
            parts[1][:64] if len(parts) > 2 and parts[1] else None,
        )
        with self.lock:
            return self.router.dead_letter(letter, token, now)

    # -- native session handler (session thread) ---------------------------------------------------
    def on_connected(self, session_present: bool) -> None:
        with self._ack_lock:
            self.acks.reset()
        self.metrics.inc("iot_broker_connects_total")
        log.info("connected to %s (session present: %s)", self.broker, session_present)

    def on_subscribed(self, reasons: list[int]) -> None:
        if all(r < 0x80 for r in reasons):
            self.connected.set()
        else:
            log.error("subscription refused: reason codes %s", [hex(r) for r in reasons])

    def on_connection_lost(self, reason: str) -> None:
        self.connected.clear()
        with self._ack_lock:
            self.acks.reset()
        if not self._stop.is_set():
            self.metrics.inc("iot_broker_disconnects_total")

    def on_messages(self, messages: list[Publish | Oversized]) -> None:
        """Route one read's deliveries under one lock acquisition; submit the batches that filled."""
        if not self.accepting:
            return  # not acknowledged: the broker redelivers them to the next session
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
                    full += [b] if b is not None else []
                    continue
                try:
                    b = handle(m.topic, m.payload, token, time.time_ns())
                except Exception as e:  # a bug past the decoder's own guard must not end the session
                    failed.append((m, token, e))
                    last_ok = False
                    continue
                last_ok = True
                if b is not None:
                    full.append(b)
        if retained:
            self.metrics.inc("iot_retained_ignored_total", len(retained))
            self._settle(retained)
        for m, token, error in failed:
            b = self._unhandled(m.topic, m.payload, token, error)
            if b is not None:
                full.append(b)
        if last_ok and MESSAGE_STEP in self.step_problems:
            self._guarded(MESSAGE_STEP, lambda: None)
        for b in full:
            self.writers[b.dest].submit(b)

    # -- settling -------------------------------------------------------------------------------
    def _settle(self, tokens: list[Token]) -> None:
        if not tokens:
            return
        if self.native:
            with self._ack_lock:
                self.session.ack(self.acks.done(tokens))
        else:
            for mid in self.acks.done(tokens):
                self.client.ack(mid, 1)
        self.metrics.inc("iot_messages_acked_total", len(tokens))

    def _dead_letter(self, letters: list[DeadLetter], tokens: list[Token]) -> None:
        for letter in letters:
            self._count(letter.reason, "dead_lettered")
        self.writers[DEADLETTERS].submit(Batch(DEADLETTERS, list(letters), tokens=tokens))

    # -- timers ----------------------------------------------------------------------------------
    def _refresh_directory(self) -> None:
        try:
            self._directory = self.destinations.registry.devices()
        except StoreUnavailable as e:
            log.warning("registry unavailable, keeping %d cached devices: %s", len(self._directory), e)

    def _guarded(self, step: str, fn: Callable[[], None]) -> None:
        """Run one ticker step; no exception ends the ticker. An unexpected one is logged once per
        episode with its traceback, counted, and reported by /healthz until the step succeeds."""
        try:
            fn()
        except Exception as e:
            p = classify(e)
            self.metrics.inc("iot_step_errors_total", step=step, error=p.error)
            if not p.same(self.step_problems.get(step)):
                log.error("%s failed: %s: %s; retrying", step, p.error, p.message, exc_info=p.kind == UNEXPECTED)
                self.step_problems[step] = p
        else:
            if self.step_problems.pop(step, None) is not None:
                log.warning("%s works again", step)

    def _flush_due(self) -> None:
        with self.lock:
            due = self.router.due(time.time())
        for b in due:
            self.writers[b.dest].submit(b)

    def _ticker(self) -> None:
        s = self.settings
        tick = min(0.05, s.flush_interval / 4)
        next_refresh = time.monotonic() + s.registry_refresh
        next_check = time.monotonic() + s.offline_check_interval
        while not self._stop.wait(tick):
            self._guarded("flush", self._flush_due)
            now = time.monotonic()
            if now >= next_refresh:
                next_refresh = now + s.registry_refresh
                self._guarded("directory refresh", self._refresh_directory)
            if now >= next_check:
                next_check = now + s.offline_check_interval
                for o in self.res.observers:
                    self._guarded(f"{type(o).__name__} tick", partial(_tick, o))

    # -- lifecycle -------------------------------------------------------------------------------
    def directory(self) -> Mapping[str, DeviceEntry]:
        """The cached device directory (id → DeviceInfo), refreshed every ``registry_refresh`` s."""
        return self._directory

    def start(self) -> None:
        self._refresh_directory()  # refuses an unmigrated schema; unreachable is fine (cache)
        for w in self.writers.values():
            w.start()
        self._ticker_thread = threading.Thread(target=self._ticker, name="ticker", daemon=True)
        self._ticker_thread.start()
        if self.native:
            tune_gc()
            self.session.start()
            return
        self.client.connect_async(self.broker.host, self.broker.port, self.settings.keepalive, **self._connect_kwargs)
        self.client.loop_start()

    def stop(self) -> None:
        self._stop.set()

    def idle(self) -> bool:
        """Nothing buffered, queued, spooled or awaiting acknowledgement."""
        with self.lock:
            buffered = bool(self.router.buffers)
        return (
            not buffered
            and self.acks.outstanding == 0
            and all(w.idle.is_set() and not w.backlog for w in self.writers.values())
        )

    def run(self) -> int:
        """Start, block until :meth:`stop`, then stop consuming, flush, acknowledge, disconnect."""
        self.start()
        self._stop.wait()
        return self.shutdown()

    def shutdown(self, timeout: float = 60.0) -> int:
        self._stop.set()
        self.accepting = False
        with self.lock:
            rest = self.router.drain()
        for b in rest:
            self.writers[b.dest].submit(b)
        deadline = time.monotonic() + timeout
        clean = True
        for w in self.writers.values():  # dead letters last: the others may still refuse items
            clean &= w.stop(max(1.0, deadline - time.monotonic()))
        if not clean:
            log.warning("some batches could not be stored or spooled; left unacknowledged for redelivery")
        if not self.native:
            self.client.disconnect()
            self.client.loop_stop()
        self.session.stop()  # native: DISCONNECT and end its thread; paho: close its idle wake-up sockets
        for o in self.res.observers:
            try:
                o.close()
            except Exception:
                log.exception("observer close failed")
        for w in self.writers.values():
            w.spool.close()
        for d in self.destinations.all():
            d.close()
        log.info(
            "stopped: %d messages acknowledged, %d spooled batches kept for the next start",
            int(self.metrics.value("iot_messages_acked_total")),
            sum(w.spool.records for w in self.writers.values()),
        )
        return 0


def _reraise(e: Exception) -> None:
    raise e


def _tick(observer: StreamObserver) -> None:
    observer.tick(time.time())


def install_signal_handlers(daemon: Daemon) -> None:
    def handler(signum: int, _frame: Any) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        daemon.stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
