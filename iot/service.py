"""Build the daemon's resources from Settings, and run it: the one function `iot ingest run` calls."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import cast

from sqlalchemy.exc import DBAPIError

from core.config import Settings
from core.directory import DeviceDirectory
from core.metricdefs import Counts
from core.sparkplug import Rebirths, SparkplugState
from core.stores import DocumentStore, TimeSeriesStore
from ingest.daemon import Daemon, Pipeline, Resources, install_signal_handlers
from ingest.decoding.cardinality import CardinalityGuard
from ingest.decoding.decode import Decoder
from ingest.decoding.mappings import load_mappings
from ingest.decoding.sparkplug import sparkplug_rules
from ingest.decoding.sparkplug.rule import SparkplugRule
from ingest.decoding.sparkplug.seq import SeqTracker
from ingest.decoding.sparkplug.state import NoRebirths
from ingest.decoding.topics import ContractTopics, Limits, TopicRule, Topics
from ingest.health import Health
from ingest.http import serve_metrics
from ingest.intake import Intake
from ingest.metrics import MessageCounts, Metrics
from ingest.mqtt.acks import AckTracker
from ingest.mqtt.broker import BrokerAddress, EmbeddedBroker, own_account, parse_broker_url
from ingest.mqtt.options import session_options
from ingest.mqtt.paho import PahoReceiver
from ingest.mqtt.receiver import NativeReceiver, Receiver
from ingest.mqtt.session import Options
from ingest.mqtt.settle import Settler
from ingest.mqtt.sparkplug_host import SparkplugHost
from ingest.observers import AfterWrite, PointsObserved, StatusObserved, StreamObserver
from ingest.routing import DEADLETTERS, DESTINATIONS, REGISTRY, TIMESERIES, Decodes, Router
from ingest.steps import Steps
from ingest.stores import documents_from, timeseries_from
from ingest.writing.destinations import LetterStore
from ingest.writing.spool import Spool
from ingest.writing.spool_records import HOLDS
from ingest.writing.writer import ToDeadLetters, Writer
from iot.alert_role import DirectoryOnly, Discard, evaluator_options
from iot.logs import configure_logging
from iot.notifying import build_notifier
from iot.orphan import SupervisorWatch
from registry.alerts.observer import AlertObserver
from registry.db import SchemaNotMigrated, check_migrated, make_engine, migrate, unreachable
from registry.deadletters import DeadLetterStore
from registry.directory import RegistryStore
from registry.sparkplug import SqlSparkplugState

log = logging.getLogger("iot.ingest")


def build_resources(
    settings: Settings, metrics: Metrics | None = None, *, migrate_embedded: bool = True
) -> Resources[RegistryStore]:
    """Open (not connect) every store. The embedded SQLite registry is migrated automatically;
    an explicit registry URL must already be migrated (``iot registry migrate``). A registry that
    cannot be reached yet is no reason not to start: the daemon rides it out as it would mid-stream
    (directory cache, spooled registry writes); one that refuses us or is not migrated is."""
    timeseries = timeseries_from(settings)
    documents = documents_from(settings)
    engine = make_engine(settings.resolved_registry_url())
    if not settings.registry_url and migrate_embedded:
        migrate(engine)
    try:
        check_migrated(engine)
    except SchemaNotMigrated:
        engine.dispose()
        raise
    except DBAPIError as e:
        if (why := unreachable(e)) is None:
            engine.dispose()
            raise
        log.warning("registry unreachable at start (%s): starting anyway, retrying as it goes", why)
    return Resources(timeseries, documents, RegistryStore(engine), DeadLetterStore(engine), [], metrics or Metrics())


def broker_address(settings: Settings) -> BrokerAddress:
    """This process's broker account: IOT_BROKER_URL's, or (a worker of several) its own
    ``{user}-{IOT_BROKER_ACCOUNT}`` (:func:`ingest.mqtt.broker.own_account`)."""
    return own_account(shared_broker_address(settings), settings.broker_account)


def shared_broker_address(settings: Settings) -> BrokerAddress:
    """IOT_BROKER_URL's account, with IOT_BROKER_PASSWORD."""
    return parse_broker_url(
        settings.broker_url,
        password=settings.broker_password.get_secret_value() if settings.broker_password else None,
        embedded_port=settings.embedded_broker_port,
    )


def build_topics(
    settings: Settings,
    sparkplug_state: SparkplugState | None = None,
    rebirths: Rebirths | None = None,
    counts: Counts | None = None,
) -> Topics:
    """The topic rules: the mappings file's (``IOT_MAPPINGS``; MappingError if it is unusable), else
    the built-in contract alone; with ``IOT_SPARKPLUG`` the Sparkplug B rules follow, deciding by
    ``sparkplug_state`` (in memory if None). With the settings' limits. ``counts`` given and no shared
    subscription (one process sees every message): Sparkplug ``seq`` gaps are tracked, counted there."""
    limits = Limits(settings.max_fields_per_message, settings.max_units_per_message)
    rules = _file_rules(settings)
    seqs = None
    if counts is not None and not settings.share_group:  # one process sees every node's whole stream
        seqs = SeqTracker(rebirths or NoRebirths(), counts, settings.sparkplug_reorder_wait)
    bound = sparkplug_rules(sparkplug_state, rebirths, seqs)  # preset sparkplug_b: where the file puts it
    out: list[TopicRule] = []
    for rule in rules:
        if not isinstance(rule, SparkplugRule):
            out.append(rule)
        elif not any(isinstance(r, SparkplugRule) for r in out):
            out += bound
    if settings.sparkplug and not any(isinstance(r, SparkplugRule) for r in out):
        out += bound
    return Topics(out, limits)


def _file_rules(settings: Settings) -> list[TopicRule]:
    if settings.mappings is None:
        return [ContractTopics(settings.topic_root)]
    return list(load_mappings(settings.mappings, settings.topic_root))


def sparkplug_enabled(settings: Settings) -> bool:
    """Sparkplug B is on: ``IOT_SPARKPLUG``, or ``preset = "sparkplug_b"`` in the mappings file."""
    return settings.sparkplug or any(isinstance(r, SparkplugRule) for r in _file_rules(settings))


def build_decoder(settings: Settings, topics: Topics | None = None) -> Decoder:
    """The topic rules and the payload decoder, with the settings' limits."""
    return Decoder(
        topics=topics or build_topics(settings),
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


def build_sparkplug_host(settings: Settings) -> SparkplugHost | None:
    """The Sparkplug B host application's publisher (STATE, rebirth requests), with ``IOT_SPARKPLUG``."""
    if not sparkplug_enabled(settings):
        return None
    own = settings.sparkplug_broker_url
    pw = settings.sparkplug_broker_password
    if own:
        broker = parse_broker_url(own, password=pw.get_secret_value() if pw else None)
    else:  # the daemon's URL account (not a worker's own: that would take the worker's session over)
        broker = shared_broker_address(settings)
    return SparkplugHost(
        broker,
        settings.sparkplug_host_id,
        client_id=f"{settings.client_id}-spb",
        min_interval_s=settings.sparkplug_rebirth_interval,
    )


def build_receiver(settings: Settings, broker: BrokerAddress, options: Options) -> Receiver:
    """The receive path: the native session (``IOT_MQTT_CLIENT=native``, the default) or paho."""
    if settings.mqtt_client == "paho":
        return PahoReceiver(broker, options)
    return NativeReceiver(options)


def build_daemon(
    settings: Settings,
    resources: Resources[RegistryStore] | None = None,
    *,
    with_alerts: bool = True,
    broker: BrokerAddress | None = None,
    decoder: Decodes | None = None,
    options: Options | None = None,
    rebirths: Rebirths | None = None,
) -> Daemon:
    """The whole data path, socket to PUBACK, in the order a message takes it."""
    broker = broker or broker_address(settings)
    res = resources or build_resources(settings)
    metrics = res.metrics
    destinations = res.destinations()
    directory = DeviceDirectory(destinations.registry.devices)
    observers: list[StreamObserver] = list(res.observers)
    if with_alerts:
        observer = AlertObserver(res.registry.engine, directory, clock=time.time, counts=metrics)
        observer.load_at_start()
        observers.append(observer)
    counts: defaultdict[tuple[str, str], int] = defaultdict(int)
    steps = Steps(metrics)
    acks = AckTracker()
    # 1. the receiver reads the socket and hands each read's deliveries to the intake (below)
    sparkplug_state = (
        SqlSparkplugState(res.registry.engine, revalidate_s=settings.sparkplug_revalidate)
        if sparkplug_enabled(settings)
        else None
    )  # Sparkplug births kept in the registry: across restarts and workers
    topics = build_topics(settings, sparkplug_state, rebirths, metrics)
    receiver = build_receiver(settings, broker, options or session_options(broker, settings, topics.filters()))
    # 2. the settler acknowledges settled deliveries on the receiver, in receive order
    settler = Settler(acks, receiver, metrics)
    # 3. one writer per destination: stores (or spools) a batch, then settles it; refused items
    #    go to the dead-letter writer, which settles them once stored
    hooks: dict[str, AfterWrite] = {TIMESERIES: PointsObserved(observers), REGISTRY: StatusObserved(observers)}
    per_dest = max(1 << 20, settings.spool_max_bytes // len(DESTINATIONS))
    spool_dir = settings.resolved_spool_dir()
    by_name = {d.name: d for d in destinations.all()}
    letters = Writer(
        by_name[DEADLETTERS], Spool(spool_dir / DEADLETTERS, per_dest, holds=HOLDS[DEADLETTERS]), settler, metrics
    )
    to_letters = ToDeadLetters(letters, counts)
    writers = {
        name: Writer(
            d,
            Spool(spool_dir / name, per_dest, holds=HOLDS[name]),
            settler,
            metrics,
            dead_letters=to_letters,
            after_write=hooks.get(name),
        )
        for name, d in by_name.items()
        if name != DEADLETTERS
    }
    writers[DEADLETTERS] = letters  # stops last
    # 4. the router decodes (topic rules, codecs), checks the directory and batches per destination
    if decoder is None:
        decoder = build_decoder(settings, topics)
    router = Router(
        decoder,
        batch_size=settings.batch_size,
        flush_interval=settings.flush_interval,
        max_letter_bytes=settings.max_payload_bytes,
        directory=directory,
        policy=settings.unknown_devices,
        counts=counts,
    )
    # 5. the intake: the receiver's handler; routes under one lock and submits full batches
    intake = Intake(router, acks, settler, writers, steps, metrics, broker=str(broker), flush_idle=settings.flush_idle)
    health = Health(intake, acks, writers, steps)
    metrics.gauge("iot_unacked_messages", lambda: acks.outstanding)
    metrics.gauge("iot_broker_subscribed", lambda: 1.0 if intake.subscribed.is_set() else 0.0)
    metrics.collectors.append(MessageCounts(counts))
    metrics.healthy = health.check
    pipeline = Pipeline(
        receiver, intake, writers, directory, observers, destinations, steps, health, acks, metrics, counts
    )
    return Daemon(settings, pipeline)


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
    broker = broker_address(settings)
    options = evaluator_options(broker, settings, settings.client_id)
    return build_daemon(settings, res, with_alerts=True, broker=broker, options=options)


def _scheme(url: str) -> str:
    """What a URL points at, without credentials (logs never carry secrets)."""
    return url.split("://", 1)[0] if "://" in url else url


def run_daemon(settings: Settings) -> int:
    """`iot ingest run`: embedded broker if asked, metrics endpoint, daemon until SIGTERM/SIGINT."""
    configure_logging(settings.log_format, settings.log_level, settings.log_repeat_interval)
    host = None
    if settings.role == "alerts":  # the alert evaluator of --workers N (iot/alert_role.py)
        res = build_evaluator_resources(settings)
        daemon = build_evaluator(settings, res)
    else:  # a worker of several (role "ingest") leaves alerts to the evaluator
        res = build_resources(settings)
        host = build_sparkplug_host(settings)
        daemon = build_daemon(settings, res, with_alerts=settings.role == "all", rebirths=host)
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
    broker = broker_address(settings)
    if broker.embedded:
        embedded = EmbeddedBroker(broker.host, broker.port).start()
        log.info("embedded broker listening on %s:%d", broker.host, broker.port)
    server = None
    if settings.metrics_port:
        server = serve_metrics(daemon.metrics, settings.metrics_host, settings.metrics_port)
        log.info("metrics on http://%s:%d/metrics", settings.metrics_host, server.server_address[1])
    install_signal_handlers(daemon)
    watch = SupervisorWatch(settings.supervisor_pid, daemon.stop).start() if settings.supervisor_pid else None
    if host is not None:
        host.start()
        log.info("Sparkplug B host application: spBv1.0/STATE/%s", host.host_id)
    notifier = None
    if settings.notify:
        notifier = build_notifier(settings, res.registry.engine, daemon.metrics).start()
    try:
        return daemon.run()
    finally:
        if watch is not None:
            watch.close()
        if notifier is not None:
            notifier.stop()
        if host is not None:
            host.stop()
        if server is not None:
            server.shutdown()
        if embedded is not None:
            embedded.stop()
