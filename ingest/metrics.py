"""Counters and gauges for /metrics (Prometheus text format) and ``iot status``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any


class Metrics:
    """Process-wide counters. Increments are plain dict updates (the GIL makes them atomic enough
    for monotonically increasing counters read by a scraper)."""

    def __init__(self) -> None:
        self.counters: defaultdict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)
        self.gauges: dict[tuple[str, tuple[tuple[str, str], ...]], Callable[[], float]] = {}
        self.collectors: list[Callable[[], dict[str, float]]] = []
        self.healthy: Callable[[], tuple[bool, dict[str, Any]]] = lambda: (True, {})

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        self.counters[(name, tuple(sorted(labels.items())))] += value

    def gauge(self, name: str, fn: Callable[[], float], **labels: str) -> None:
        self.gauges[(name, tuple(sorted(labels.items())))] = fn

    def value(self, name: str, **labels: str) -> float:
        return self.counters.get((name, tuple(sorted(labels.items()))), 0.0)

    def snapshot(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for (name, labels), v in list(self.counters.items()):
            out[_key(name, labels)] = v
        for (name, labels), fn in list(self.gauges.items()):
            try:
                out[_key(name, labels)] = float(fn())
            except Exception:  # a gauge must never break a scrape
                continue
        for collect in self.collectors:
            out.update(collect())
        return out

    def render(self) -> str:
        lines: list[str] = []
        seen: set[str] = set()
        for key, v in sorted(self.snapshot().items()):
            name = key.split("{", 1)[0]
            if name not in seen:
                seen.add(name)
                kind = "counter" if name.endswith("_total") else "gauge"
                lines.append(f"# TYPE {name} {kind}")
            lines.append(f"{key} {v:g}" if v != int(v) else f"{key} {int(v)}")
        return "\n".join(lines) + "\n"


def _key(name: str, labels: tuple[tuple[str, str], ...]) -> str:
    if not labels:
        return name
    inner = ",".join(f'{k}="{v}"' for k, v in labels)
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
            out[f'{name}{{{label}="{kind}"}}'] = n
        return out
