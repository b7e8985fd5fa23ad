"""Build the daemon's resources from Settings, and run it: the one function `iot ingest run` calls."""

from __future__ import annotations

import logging
import time
from typing import cast

from sqlalchemy import Engine

from core.config import Settings
from core.stores import DocumentStore, TimeSeriesStore
from ingest.broker import EmbeddedBroker, parse_broker_url
from ingest.cardinality import CardinalityGuard
from ingest.daemon import Daemon, Resources, install_signal_handlers
from ingest.decode import Decoder
from ingest.destinations import LetterStore
from ingest.http import serve_metrics
from ingest.metrics import Metrics
from ingest.mqtt.session import Session
from ingest.stores import documents_from, timeseries_from
from iot.alert_role import DirectoryOnly, Discard, evaluator_options
from registry.alerts.observer import AlertObserver
from registry.db import check_migrated, make_engine, migrate
from registry.deadletters import DeadLetterStore
from registry.directory import RegistryStore
from registry.notify.notifier import Notifier

log = logging.getLogger("iot.ingest")


def build_resources(
    settings: Settings, metrics: Metrics | None = None, *, migrate_embedded: bool = True
) -> Resources[RegistryStore]:
    """Open (not connect) every store. The embedded SQLite registry is migrated automatically;
    an explicit registry URL must already be migrated (``iot registry migrate``)."""
    timeseries = timeseries_from(settings)
    documents = documents_from(settings)
    engine = make_engine(settings.resolved_registry_url())
    if not settings.registry_url and migrate_embedded:
        migrate(engine)
    check_migrated(engine)
    return Resources(timeseries, documents, RegistryStore(engine), DeadLetterStore(engine), [], metrics or Metrics())


def build_daemon(
    settings: Settings, resources: Resources[RegistryStore] | None = None, *, with_alerts: bool = True
) -> Daemon:
    broker = parse_broker_url(
        settings.broker_url,
        password=settings.broker_password.get_secret_value() if settings.broker_password else None,
        embedded_port=settings.embedded_broker_port,
    )
    res = resources or build_resources(settings)
    decoder = Decoder(
        topic_root=settings.topic_root,
        max_payload_bytes=settings.max_payload_bytes,
        future_window_s=settings.future_window,
        max_fields=settings.max_fields_per_message,
        max_units=settings.max_units_per_message,
        guard=CardinalityGuard(
            max_new_fields=settings.max_new_fields_per_device,
            max_new_units=settings.max_new_units_per_device,
            window_s=settings.cardinality_window,
        ),
    )
    daemon = Daemon(settings, broker, res, decoder.decode, res.destinations())
    if with_alerts:
        observer = AlertObserver(res.registry.engine, daemon.directory, clock=time.time)
        observer.load()
        res.observers = [*res.observers, observer]
    return daemon


def build_evaluator_resources(settings: Settings) -> Resources[RegistryStore]:
    """The evaluator's stores: time series, documents and dead letters discard; the registry
    only reads the directory (the workers write; alerts go through the registry's engine)."""
    engine = make_engine(settings.resolved_registry_url())
    check_migrated(engine)  # the supervisor migrated an embedded registry before starting us
    drop = Discard()
    return Resources(
        cast(TimeSeriesStore, drop),
        cast(DocumentStore, drop),
        DirectoryOnly(engine),
        cast(LetterStore, drop),
        [],
        Metrics(),
    )


def build_evaluator(settings: Settings, res: Resources[RegistryStore]) -> Daemon:
    """A daemon that decodes, routes and evaluates alerts, stores nothing, on its own subscription
    (settings.client_id is already the evaluator's own, ``{client_id}-alerts``, from evaluator_env)."""
    daemon = build_daemon(settings, res, with_alerts=True)
    daemon.session.stop()  # replaced before it ever ran: close its wake-up sockets
    daemon.session = Session(evaluator_options(daemon.broker, settings, settings.client_id), daemon)
    return daemon


def build_notifier(settings: Settings, engine: Engine) -> Notifier:
    """The notifier as the settings say: attempt deadline, channels side by side, rate, damping."""
    return Notifier(
        engine,
        settings.notify_secrets,
        poll_s=settings.notify_poll,
        timeout=settings.notify_attempt_timeout,
        channels_at_once=settings.notify_channels_at_once,
        per_channel_per_minute=settings.notify_rate_per_minute,
        damping_window_s=settings.notify_damping_window,
    )


def _scheme(url: str) -> str:
    """What a URL points at, without credentials (logs never carry secrets)."""
    return url.split("://", 1)[0] if "://" in url else url


def run_daemon(settings: Settings) -> int:
    """`iot ingest run`: embedded broker if asked, metrics endpoint, daemon until SIGTERM/SIGINT."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if settings.role == "alerts":  # the alert evaluator of --workers N (iot/alert_role.py)
        res = build_evaluator_resources(settings)
        daemon = build_evaluator(settings, res)
    else:  # a worker of several (role "ingest") leaves alerts to the evaluator
        res = build_resources(settings)
        daemon = build_daemon(settings, res, with_alerts=settings.role == "all")
    log.info(
        "role %s; stores: time series %s, documents %s, registry %s (batch %d, flush %.2fs, unknown devices: %s)",
        settings.role,
        _scheme(settings.timeseries_url),
        _scheme(settings.documents_url),
        _scheme(settings.resolved_registry_url()),
        settings.batch_size,
        settings.flush_interval,
        settings.unknown_devices,
    )
    embedded = None
    if daemon.broker.embedded:
        embedded = EmbeddedBroker(daemon.broker.host, daemon.broker.port).start()
        log.info("embedded broker listening on %s:%d", daemon.broker.host, daemon.broker.port)
    server = None
    if settings.metrics_port:
        server = serve_metrics(daemon.metrics, settings.metrics_host, settings.metrics_port)
        log.info("metrics on http://%s:%d/metrics", settings.metrics_host, server.server_address[1])
    install_signal_handlers(daemon)
    notifier = None
    if settings.notify:
        notifier = build_notifier(settings, res.registry.engine).start()
    try:
        return daemon.run()
    finally:
        if notifier is not None:
            notifier.stop()
        if server is not None:
            server.shutdown()
        if embedded is not None:
            embedded.stop()
