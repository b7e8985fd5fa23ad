"""Every metric the processes export: name, type, help and label names, in one place.

``ingest.metrics.Metrics`` renders them (``# HELP``/``# TYPE`` from here); a test walks the code and
refuses a metric name or label not declared here. Parts below the composition layer that count
(the alert observer, the notifier) see only :class:`Counts`, not the exporter.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class MetricKind(StrEnum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


@dataclass(frozen=True, slots=True)
class MetricDef:
    name: str
    kind: MetricKind
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()  # histograms: upper bounds, ascending (+Inf is implicit)


class Counts(Protocol):
    """Where a part counts events (``ingest.metrics.Metrics``); names are declared in :data:`METRICS`."""

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None: ...


class NoCounts:
    """Counts nothing (a part built without an exporter, e.g. by a CLI command)."""

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        return None


C, G, H = MetricKind.COUNTER, MetricKind.GAUGE, MetricKind.HISTOGRAM
WRITE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
DELIVERY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

_DEFS = (
    # messages
    MetricDef(
        "iot_messages_received_total", C, "Messages routed to a store, by kind (measurement or collection)", ("kind",)
    ),
    MetricDef("iot_messages_dead_lettered_total", C, "Messages dead-lettered, by reason", ("reason",)),
    MetricDef("iot_messages_acked_total", C, "Deliveries acknowledged to the broker (PUBACK) once stored or spooled"),
    MetricDef(
        "iot_sparkplug_seq_lost_total",
        C,
        "Sparkplug messages lost before the daemon (seq gaps past the reorder wait; single-process daemon only)",
    ),
    MetricDef("iot_retained_ignored_total", C, "Retained messages replayed by the broker and ignored"),
    MetricDef("iot_unacked_messages", G, "Deliveries received and not yet acknowledged"),
    # broker
    MetricDef("iot_broker_connects_total", C, "Connections to the broker made"),
    MetricDef("iot_broker_disconnects_total", C, "Connections to the broker lost"),
    MetricDef("iot_broker_subscribed", G, "1 while the subscription holds"),
    # writers
    MetricDef("iot_batch_items_total", C, "Items handed to a destination's writer", ("dest",)),
    MetricDef("iot_batches_written_total", C, "Batches written to a store", ("dest",)),
    MetricDef("iot_items_written_total", C, "Items a store took", ("dest",)),
    MetricDef("iot_items_rejected_total", C, "Items a store refused (dead-lettered as store_rejected)", ("dest",)),
    MetricDef("iot_write_seconds_total", C, "Time spent in store writes", ("dest",)),
    MetricDef("iot_store_write_seconds", H, "Duration of one store write (a batch)", ("dest",), WRITE_BUCKETS),
    MetricDef(
        "iot_publish_to_store_seconds",
        H,
        "From the arrival of a batch's oldest message at the daemon to its write completing (one per batch)",
        ("dest",),
        DELIVERY_BUCKETS,
    ),
    MetricDef("iot_store_errors_total", C, "Failed store writes, by exception class", ("dest", "error")),
    MetricDef("iot_store_up", G, "1 while the store takes writes", ("dest",)),
    # spool
    MetricDef("iot_spooled_batches_total", C, "Batches spooled to disk (store down or behind)", ("dest",)),
    MetricDef("iot_replayed_batches_total", C, "Spooled batches written to their store", ("dest",)),
    MetricDef("iot_spool_full_total", C, "Batches held unacknowledged because the spool was full", ("dest",)),
    MetricDef("iot_spool_errors_total", C, "Batches the spool could not take, by exception class", ("dest", "error")),
    MetricDef(
        "iot_spool_corrupt_records_total", C, "Spool records set aside as unreadable, by reason", ("dest", "reason")
    ),
    MetricDef("iot_spool_bytes", G, "Bytes in the spool", ("dest",)),
    MetricDef("iot_spool_batches", G, "Batches in the spool", ("dest",)),
    MetricDef("iot_held_batches", G, "Batches held in memory, unacknowledged (spool full or failing)", ("dest",)),
    MetricDef("iot_spool_quarantined", G, "Set-aside spool entries waiting for an operator", ("dest",)),
    # daemon steps
    MetricDef("iot_step_errors_total", C, "Failures of a recurring daemon step, by exception class", ("step", "error")),
    # alerts and notifications
    MetricDef("iot_alerts_opened_total", C, "Alerts opened by the rule engine"),
    MetricDef("iot_alerts_resolved_total", C, "Alerts resolved by the rule engine (condition cleared)"),
    MetricDef("iot_notifications_sent_total", C, "Notifications delivered, by channel kind", ("channel",)),
    MetricDef("iot_notifications_failed_total", C, "Failed notification attempts, by channel kind", ("channel",)),
    MetricDef("iot_notifications_suppressed_total", C, "Notifications held back by flapping damping"),
    # the process
    MetricDef("iot_build_info", G, "Always 1: the running version", ("version", "python")),
    MetricDef("process_cpu_seconds_total", C, "User and system CPU time spent"),
    MetricDef("process_resident_memory_bytes", G, "Resident memory size"),
    MetricDef("process_open_fds", G, "Open file descriptors"),
    MetricDef("process_max_fds", G, "Maximum number of open file descriptors"),
    MetricDef("process_start_time_seconds", G, "Start time of the process since the epoch"),
)

METRICS: dict[str, MetricDef] = {d.name: d for d in _DEFS}
