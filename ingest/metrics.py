"""Counters, gauges and histograms for /metrics (Prometheus text format 0.0.4) and ``iot status``.

What each metric is (type, help, label names) is declared once, in :mod:`core.metricdefs`. The
series whose label values are known in advance (destinations, message kinds, dead-letter reasons)
exist from construction, at zero, so a scraper and a dashboard see them before the first event.
"""

from __future__ import annotations

import itertools
import sys
import threading
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from core.metricdefs import METRICS, MetricKind
from core.model import COLLECTIONS, MEASUREMENTS, Reason
from ingest.process import process_metrics
from ingest.routing import DESTINATIONS
from ingest.writing.spool_quarantine import Damage

LabelKey = tuple[tuple[str, str], ...]
Series = tuple[str, LabelKey]

KINDS = (*MEASUREMENTS.values(), *COLLECTIONS.values(), "status")
"""The ``kind`` a routed message is counted under (``ingest.routing.Router``)."""

KNOWN_SERIES: dict[str, dict[str, Sequence[str]]] = {
    "iot_messages_received_total": {"kind": KINDS},
    "iot_messages_dead_lettered_total": {"reason": [str(r) for r in Reason]},
    "iot_spool_corrupt_records_total": {"dest": DESTINATIONS, "reason": [str(d) for d in Damage]},
    **{
        d.name: {"dest": DESTINATIONS}
        for d in METRICS.values()
        if d.labels == ("dest",) and d.kind is not MetricKind.GAUGE  # the writers' gauges come with the writers
    },
}
"""Label values known before anything happens: these series are rendered from start-up."""


def build_version() -> str:
    try:
        return version("polyglot-iot")
    except PackageNotFoundError:
        return "unknown"


class Histogram:
    """Cumulative bucket counts, sum and count of one series."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # per bucket (not cumulative); the last is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, v: float) -> None:
        self.counts[bisect_left(self.bounds, v)] += 1
        self.sum += v
        self.count += 1


class Metrics:
    """Process-wide metrics. Counter increments are plain dict updates (the GIL makes them atomic
    enough for monotonically increasing counters read by a scraper); histograms take a lock and
    are observed once per batch, not per message."""

    def __init__(self, known: Mapping[str, Mapping[str, Sequence[str]]] = KNOWN_SERIES) -> None:
        self.counters: defaultdict[Series, float] = defaultdict(float)
        self.gauges: dict[Series, Callable[[], float]] = {}
        self.histograms: dict[Series, Histogram] = {}
        self.collectors: list[Callable[[], dict[str, float]]] = [process_metrics]
        self.healthy: Callable[[], tuple[bool, dict[str, Any]]] = lambda: (True, {})
        self._lock = threading.Lock()
        for d in METRICS.values():
            if d.kind is not MetricKind.GAUGE and not d.labels:
                self.declare(d.name)
        for name, values in known.items():
            self.declare(name, **values)
        self.gauge("iot_build_info", lambda: 1.0, version=build_version(), python=sys.version.split()[0])

    def declare(self, name: str, **values: Iterable[str]) -> None:
        """Create the series of ``name`` for every combination of ``values`` (label -> values), at zero."""
        d = METRICS[name]
        if set(values) != set(d.labels):
            raise ValueError(f"{name} has labels {d.labels}, not {tuple(values)}")
        names = sorted(values)
        for combo in itertools.product(*(list(values[n]) for n in names)):
            key: LabelKey = tuple(zip(names, combo, strict=True))
            if d.kind is MetricKind.HISTOGRAM:
                with self._lock:
                    self.histograms.setdefault((name, key), Histogram(d.buckets))
            elif d.kind is MetricKind.COUNTER:
                self.counters[(name, key)] += 0.0

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        self.counters[(name, tuple(sorted(labels.items())))] += value

    def gauge(self, name: str, fn: Callable[[], float], **labels: str) -> None:
        self.gauges[(name, tuple(sorted(labels.items())))] = fn

    def observe(self, name: str, value: float, **labels: str) -> None:
        """One observation of a histogram (declared with its buckets in core.metricdefs)."""
        key: Series = (name, tuple(sorted(labels.items())))
        with self._lock:
            h = self.histograms.get(key)
            if h is None:
                h = self.histograms[key] = Histogram(METRICS[name].buckets)
            h.observe(value)

    def value(self, name: str, **labels: str) -> float:
        return self.counters.get((name, tuple(sorted(labels.items()))), 0.0)

    def snapshot(self) -> dict[str, float]:
        """Every sample by its exposition key (histograms as ``_bucket``/``_sum``/``_count``)."""
        out: dict[str, float] = {}
        for (name, labels), v in list(self.counters.items()):
            out[_key(name, labels)] = v
        for (name, labels), fn in list(self.gauges.items()):
            try:
                out[_key(name, labels)] = float(fn())
            except Exception:  # a gauge must never break a scrape
                continue
        with self._lock:
            for (name, labels), h in self.histograms.items():
                out.update(_histogram_samples(name, labels, h))
        for collect in self.collectors:
            try:
                out.update(collect())
            except Exception:  # nor a collector
                continue
        return out

    def render(self) -> str:
        """Prometheus text: each family's ``# HELP`` and ``# TYPE``, then its samples."""
        families: defaultdict[str, list[tuple[str, float]]] = defaultdict(list)
        for key, v in self.snapshot().items():
            families[_family(key)].append((key, v))
        lines: list[str] = []
        for name in sorted(families):
            d = METRICS.get(name)
            help_, kind = (d.help, str(d.kind)) if d is not None else ("(undeclared)", "untyped")
            lines.append(f"# HELP {name} {_escape_help(help_)}")
            lines.append(f"# TYPE {name} {kind}")
            samples = families[name] if kind == "histogram" else sorted(families[name])
            lines.extend(f"{key} {_number(v)}" for key, v in samples)
        return "\n".join(lines) + "\n"


def _histogram_samples(name: str, labels: LabelKey, h: Histogram) -> dict[str, float]:
    out: dict[str, float] = {}
    running = 0
    for bound, n in zip([*map(_number, h.bounds), "+Inf"], h.counts, strict=True):
        running += n
        out[_key(f"{name}_bucket", (*labels, ("le", bound)))] = running
    out[_key(f"{name}_sum", labels)] = h.sum
    out[_key(f"{name}_count", labels)] = h.count
    return out


def _family(key: str) -> str:
    name = key.split("{", 1)[0]
    for suffix in ("_bucket", "_sum", "_count"):
        base = name.removesuffix(suffix)
        if base != name and base in METRICS and METRICS[base].kind is MetricKind.HISTOGRAM:
            return base
    return name


def _number(v: float) -> str:
    if v != v:
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "+Inf" if v > 0 else "-Inf"
    return str(int(v)) if v == int(v) else repr(v)


def _escape_label(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n")


def _key(name: str, labels: LabelKey) -> str:
    if not labels:
        return name
    inner = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels)
    return f"{name}{{{inner}}}"


def parse_prometheus(text: str) -> dict[str, float]:
    """The inverse of :meth:`Metrics.render` for ``iot status`` and tests."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        try:
            out[key] = float(value)
        except ValueError:
            continue
    return out


class MessageCounts:
    """A collector: messages received per kind and dead-lettered per reason, from the counts the
    router and the dead-letter forwarder keep ((kind or reason, outcome) -> n)."""

    def __init__(self, counts: Mapping[tuple[str, str], int]) -> None:
        self.counts = counts

    def __call__(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for (kind, outcome), n in list(self.counts.items()):
            name = "iot_messages_dead_lettered_total" if outcome == "dead_lettered" else "iot_messages_received_total"
            label = "reason" if outcome == "dead_lettered" else "kind"
            out[_key(name, ((label, kind),))] = n
        return out
