"""The metric definitions (core.metricdefs) against the code that counts, and what /metrics renders
from them: HELP and TYPE on every family, series known in advance present at zero, histograms in
the exposition format, and the process_* metrics read from /proc."""

from __future__ import annotations

import ast
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

from core.metricdefs import METRICS, MetricKind
from ingest.metrics import Metrics
from ingest.routing import DESTINATIONS
from tests.exposition import parse

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "ingest", "registry", "simulators", "iot", "bench")
METRIC_NAME = re.compile(r"^(?:iot|process)_[a-z0-9_]+$")
NOT_METRICS = {"iot_fields", "iot_rollup", "iot_downsample_"}  # InfluxDB measurement / retention names
CALLS = {"inc", "gauge", "observe", "declare", "value"}


def _names(node: ast.expr) -> Iterator[str]:
    """The metric names an argument can take: a constant, or either branch of ``a if c else b``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.IfExp):
        yield from _names(node.body)
        yield from _names(node.orelse)


def problems(source: str, where: str) -> list[str]:
    """Metric-like names in ``source`` that are not declared, and calls whose labels differ from
    the declared ones."""
    found: list[str] = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            name = node.value
            if METRIC_NAME.match(name) and name not in NOT_METRICS and name not in METRICS:
                found.append(f"{where}:{node.lineno}: {name} is not declared in core.metricdefs")
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in CALLS):
            continue
        if not node.args or any(k.arg is None for k in node.keywords):
            continue
        labels = {k.arg for k in node.keywords if k.arg is not None}
        for name in _names(node.args[0]):
            d = METRICS.get(name)
            if d is not None and labels != set(d.labels):
                found.append(f"{where}:{node.lineno}: {name} with labels {sorted(labels)}, declared {list(d.labels)}")
    return found


def test_every_metric_the_code_names_is_declared_with_its_labels() -> None:
    found: list[str] = []
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    assert len(files) > 50
    for path in files:
        found += problems(path.read_text(), str(path.relative_to(ROOT)))
    assert found == []


def test_the_check_catches_an_undeclared_name_and_wrong_labels() -> None:
    code = (
        'm.inc("iot_made_up_total")\n'
        'm.inc("iot_store_errors_total", dest="x")\n'
        'm.observe("iot_store_write_seconds", 1.0, dest="timeseries")\n'
        'c.inc("iot_notifications_sent_total" if ok else "iot_notifications_failed_total")\n'
    )
    assert sorted(problems(code, "x.py")) == [
        "x.py:1: iot_made_up_total is not declared in core.metricdefs",
        "x.py:2: iot_store_errors_total with labels ['dest'], declared ['dest', 'error']",
        "x.py:4: iot_notifications_failed_total with labels [], declared ['channel']",
        "x.py:4: iot_notifications_sent_total with labels [], declared ['channel']",
    ]


def test_definitions_are_conventional() -> None:
    for d in METRICS.values():
        assert d.help and not d.help.endswith("."), d.name
        assert d.name.endswith("_total") == (d.kind is MetricKind.COUNTER), d.name
        if d.kind is MetricKind.HISTOGRAM:
            assert d.name.endswith("_seconds") and list(d.buckets) == sorted(set(d.buckets)), d.name
        else:
            assert not d.buckets, d.name


def test_a_fresh_exporter_renders_every_known_series_at_zero_with_help_and_type() -> None:
    families = parse(Metrics().render())
    for dest in DESTINATIONS:
        for name in ("iot_items_written_total", "iot_batches_written_total", "iot_items_rejected_total"):
            assert families[name].samples[f'{name}{{dest="{dest}"}}'] == 0
        assert families["iot_store_write_seconds"].samples[f'iot_store_write_seconds_count{{dest="{dest}"}}'] == 0
    received = families["iot_messages_received_total"].samples
    assert received['iot_messages_received_total{kind="sensor_readings"}'] == 0
    assert received['iot_messages_received_total{kind="status"}'] == 0
    dead = families["iot_messages_dead_lettered_total"].samples
    assert dead['iot_messages_dead_lettered_total{reason="invalid_json"}'] == 0
    assert dead['iot_messages_dead_lettered_total{reason="store_rejected"}'] == 0
    for name in ("iot_alerts_opened_total", "iot_alerts_resolved_total", "iot_notifications_suppressed_total"):
        assert families[name].samples[name] == 0 and families[name].kind == "counter"
    assert families["iot_messages_received_total"].help == METRICS["iot_messages_received_total"].help
    [(key, one)] = families["iot_build_info"].samples.items()
    assert one == 1 and re.search(r'version="[^"]+"', key)


def test_histograms_count_per_bucket_cumulatively() -> None:
    m = Metrics()
    for v in (0.0004, 0.003, 0.003, 0.2, 99.0):
        m.observe("iot_store_write_seconds", v, dest="timeseries")
    f = parse(m.render())["iot_store_write_seconds"]
    s = f.samples
    assert f.kind == "histogram"
    assert s['iot_store_write_seconds_bucket{dest="timeseries",le="0.001"}'] == 1
    assert s['iot_store_write_seconds_bucket{dest="timeseries",le="0.005"}'] == 3
    assert s['iot_store_write_seconds_bucket{dest="timeseries",le="0.25"}'] == 4
    assert s['iot_store_write_seconds_bucket{dest="timeseries",le="30"}'] == 4
    assert s['iot_store_write_seconds_bucket{dest="timeseries",le="+Inf"}'] == 5
    assert s['iot_store_write_seconds_count{dest="timeseries"}'] == 5
    assert abs(s['iot_store_write_seconds_sum{dest="timeseries"}'] - 99.2064) < 1e-9
    assert s['iot_store_write_seconds_count{dest="documents"}'] == 0


def test_process_metrics_follow_the_process(tmp_path: Path) -> None:
    m = Metrics()
    before = parse(m.render())
    opened = [(tmp_path / f"f{i}").open("w") for i in range(5)]
    ballast = bytearray(64 << 20)  # touched: resident
    try:
        after = parse(m.render())
    finally:
        for f in opened:
            f.close()
    value = {name: f.samples[name] for name, f in after.items() if name.startswith("process_")}
    assert value["process_open_fds"] == before["process_open_fds"].samples["process_open_fds"] + 5
    grown = (
        value["process_resident_memory_bytes"]
        - before["process_resident_memory_bytes"].samples["process_resident_memory_bytes"]
    )
    assert grown >= 60 << 20 and len(ballast) == 64 << 20
    assert after["process_cpu_seconds_total"].kind == "counter" and value["process_cpu_seconds_total"] > 0
    started = os.stat(f"/proc/{os.getpid()}").st_mtime  # /proc/<pid> is created as the process starts
    assert abs(value["process_start_time_seconds"] - started) < 5
    assert value["process_start_time_seconds"] < time.time()
    assert value["process_max_fds"] >= value["process_open_fds"]
