"""Sparkplug B vs the built-in JSON contract, decode + route in one process (not a test): readings/s
from DDATA messages of 10 metrics (aliases only, named through the device's birth) against
single-reading JSON messages, and their ratio in one run (target >= 3).

.venv/bin/python bench/sparkplug_bench.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import json
import time

from ingest.decoding.decode import Decoder
from ingest.decoding.sparkplug import sparkplug_rules
from ingest.decoding.sparkplug.encode import MetricValue, encode
from ingest.decoding.sparkplug.proto import DataType
from ingest.decoding.sparkplug.state import MemoryState, NoRebirths
from ingest.decoding.topics import ContractTopics, Topics
from ingest.routing import Router

NOW_MS = 1_764_038_400_000
NOW_NS = NOW_MS * 1_000_000
METRICS = 10


def rate(router: Router, topic: str, payload: bytes, readings: int, seconds: float) -> float:
    """Readings/s through ``router.handle`` (full batches are dropped: the writer is not measured)."""
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(1000):
            router.handle(topic, payload, None, NOW_NS)
        n += 1000
    return n * readings / (time.perf_counter() - start)


def run(seconds: float) -> float:
    decoder = Decoder(topics=Topics([ContractTopics(), *sparkplug_rules(MemoryState(), NoRebirths())]))
    router = Router(decoder, batch_size=5000, flush_interval=3600.0)
    birth = [MetricValue(DataType.DOUBLE, 0.0, name=f"Sensors/t{i}", alias=i + 1) for i in range(METRICS)]
    router.handle(
        "spBv1.0/bench/NBIRTH/edge", encode([MetricValue(DataType.INT64, 0, name="bdSeq")], seq=0), None, NOW_NS
    )
    router.handle("spBv1.0/bench/DBIRTH/edge/dev", encode(birth, seq=1, timestamp_ms=NOW_MS), None, NOW_NS)
    ddata = encode(
        [MetricValue(DataType.DOUBLE, 20.0 + i / 10, alias=i + 1) for i in range(METRICS)], seq=2, timestamp_ms=NOW_MS
    )
    single = json.dumps({"ts": NOW_MS, "temperature": 21.5}).encode()
    json_topic, sp_topic = "devices/dev-0042/telemetry", "spBv1.0/bench/DDATA/edge/dev"
    for topic, payload in ((json_topic, single), (sp_topic, ddata)):  # warm the topic caches
        router.handle(topic, payload, None, NOW_NS)
    j = rate(router, json_topic, single, 1, seconds)
    s = rate(router, sp_topic, ddata, METRICS, seconds)
    print(f"json, 1 reading        {j:>12,.0f} readings/s")
    print(f"sparkplug DDATA of {METRICS:<3} {s:>12,.0f} readings/s")
    print(f"ratio                  {s / j:>12.1f}x  (target >= 3)")
    return s / j


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="Sparkplug B vs JSON decode+route benchmark")
    ap.add_argument("--seconds", type=float, default=2.0)
    run(ap.parse_args().seconds)
