"""A strict reader of the Prometheus text exposition format 0.0.4, for the tests of /metrics."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = rf'(?P<k>{NAME})="(?P<v>(?:[^"\\\n]|\\.)*)"'
LABELS = rf'\{{{NAME}="(?:[^"\\\n]|\\.)*"(?:,{NAME}="(?:[^"\\\n]|\\.)*")*\}}'
SAMPLE = re.compile(
    rf"^(?P<name>{NAME})(?P<labels>{LABELS})? (?P<value>[-+]?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|NaN|[+-]?Inf))$"
)
HELP = re.compile(rf"^# HELP (?P<name>{NAME}) (?P<text>(?:[^\\\n]|\\[\\n])*)$")
TYPE = re.compile(rf"^# TYPE (?P<name>{NAME}) (?P<kind>counter|gauge|histogram|summary|untyped)$")


@dataclass
class Family:
    name: str
    help: str
    kind: str
    samples: dict[str, float] = field(default_factory=dict)  # exposition key -> value


def labels_of(key: str) -> dict[str, str]:
    inner = key.partition("{")[2].rstrip("}")
    return {m["k"]: m["v"] for m in re.finditer(LABEL, inner)}


def parse(text: str) -> dict[str, Family]:
    """Families by name. Every family has HELP then TYPE before its samples, each once; counter
    names end in ``_total``; a histogram's series have cumulative ``_bucket`` samples ending at
    ``le="+Inf"`` equal to its ``_count``, and a ``_sum``; no sample twice."""
    families: dict[str, Family] = {}
    helps: dict[str, str] = {}
    current: Family | None = None
    assert text.endswith("\n"), "the exposition ends with a newline"
    for line in text.splitlines():
        if m := HELP.match(line):
            assert m["name"] not in helps and m["name"] not in families, f"second HELP for {m['name']}"
            helps[m["name"]] = m["text"]
            continue
        if m := TYPE.match(line):
            name = m["name"]
            assert name in helps, f"TYPE without HELP before it: {name}"
            assert name not in families, f"second TYPE for {name}"
            current = families[name] = Family(name, helps[name], m["kind"])
            continue
        m = SAMPLE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        assert current is not None, f"sample before any TYPE: {line!r}"
        name = m["name"]
        allowed = {current.name}
        if current.kind == "histogram":
            allowed = {f"{current.name}_bucket", f"{current.name}_sum", f"{current.name}_count"}
        assert name in allowed, f"sample {name} inside family {current.name}"
        key = line.rsplit(" ", 1)[0]
        assert key not in current.samples, f"duplicate sample {key}"
        current.samples[key] = float(m["value"])
    assert set(helps) == set(families), f"HELP without TYPE: {set(helps) - set(families)}"
    for f in families.values():
        assert f.help.strip(), f"empty HELP for {f.name}"
        if f.kind == "counter":
            assert f.name.endswith("_total"), f.name
        if f.kind == "histogram":
            _check_histogram(f)
    return families


def _check_histogram(f: Family) -> None:
    series: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
    for key, v in f.samples.items():
        labels = labels_of(key)
        if key.startswith(f"{f.name}_bucket"):
            le = labels.pop("le")
            series.setdefault(tuple(sorted(labels.items())), []).append((float(le), v))
    assert series, f"histogram {f.name} without buckets"
    for key_labels, buckets in series.items():
        assert buckets[-1][0] == float("inf"), f"{f.name}{key_labels}: the last bucket is le=+Inf"
        bounds = [b for b, _ in buckets]
        assert bounds == sorted(bounds), f"{f.name}{key_labels}: buckets in order"
        counts = [n for _, n in buckets]
        assert counts == sorted(counts), f"{f.name}{key_labels}: bucket counts are cumulative"
        inner = ",".join(f'{k}="{v}"' for k, v in key_labels)
        suffix = f"{{{inner}}}" if inner else ""
        assert f.samples[f"{f.name}_count{suffix}"] == counts[-1], f"{f.name}{key_labels}: _count is the +Inf bucket"
        assert f"{f.name}_sum{suffix}" in f.samples, f"{f.name}{key_labels}: _sum"


def flat(families: dict[str, Family]) -> dict[str, float]:
    return {k: v for f in families.values() for k, v in f.samples.items()}
