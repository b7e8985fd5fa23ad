"""Sparkplug B vs the built-in JSON contract, decode + route in one process (not a test): readings
per CPU second from DDATA messages of 10 metrics (aliases only, named through the device's birth)
against single-reading JSON messages, and their ratio in one run (target >= 3).

CPU time (``time.process_time``), not wall time, and the two alternate in short rounds: on a shared
machine another process's load then slows neither side more than the other. Each side's rate is its
best round; the ratio is of those rates. ``--seq`` adds the ``seq`` gap tracker a ``--workers 1``
daemon runs.

.venv/bin/python bench/sparkplug_bench.py [--seconds 2] [--rounds 10] [--seq]
"""

from __future__ import annotations

import argparse
import json
import time

from core.metricdefs import NoCounts
from ingest.decoding.decode import Decoder
from ingest.decoding.sparkplug import sparkplug_rules
from ingest.decoding.sparkplug.encode import MetricValue, encode
from ingest.decoding.sparkplug.proto import DataType
from ingest.decoding.sparkplug.seq import SeqTracker
from ingest.decoding.sparkplug.state import MemoryState, NoRebirths
from ingest.decoding.topics import ContractTopics, Topics
from ingest.routing import Router

NOW_MS = 1_764_038_400_000
NOW_NS = NOW_MS * 1_000_000
METRICS = 10


def rate(router: Router, topic: str, block: list[bytes], readings: int, seconds: float) -> float:
    """Readings per CPU second through ``router.handle``, sending ``block`` over and over (full
    batches are dropped: the writer is not measured)."""
    n = 0
    start = time.process_time()
    deadline = start + seconds
    while time.process_time() < deadline:
        for payload in block:
            router.handle(topic, payload, None, NOW_NS)
        n += len(block)
    return n * readings / (time.process_time() - start)


def run(seconds: float, rounds: int = 10, seq: bool = False) -> float:
    rebirths = NoRebirths()
    seqs = SeqTracker(rebirths, NoCounts()) if seq else None
    decoder = Decoder(topics=Topics([ContractTopics(), *sparkplug_rules(MemoryState(), rebirths, seqs)]))
    router = Router(decoder, batch_size=5000, flush_interval=3600.0)
    birth = [MetricValue(DataType.DOUBLE, 0.0, name=f"Sensors/t{i}", alias=i + 1) for i in range(METRICS)]
    router.handle(
        "spBv1.0/bench/NBIRTH/edge", encode([MetricValue(DataType.INT64, 0, name="bdSeq")], seq=0), None, NOW_NS
    )
    router.handle("spBv1.0/bench/DBIRTH/edge/dev", encode(birth, seq=1, timestamp_ms=NOW_MS), None, NOW_NS)
    values = [MetricValue(DataType.DOUBLE, 20.0 + i / 10, alias=i + 1) for i in range(METRICS)]
    ddata = [encode(values, seq=(2 + k) % 256, timestamp_ms=NOW_MS) for k in range(1024)]  # seq in order
    single = [json.dumps({"ts": NOW_MS, "temperature": 21.5}).encode()] * 1024
    json_topic, sp_topic = "devices/dev-0042/telemetry", "spBv1.0/bench/DDATA/edge/dev"
    router.handle(json_topic, single[0], None, NOW_NS)  # warm the topic cache
    j = s = 0.0
    for _ in range(rounds):  # alternating (module docstring)
        j = max(j, rate(router, json_topic, single, 1, seconds / rounds))
        s = max(s, rate(router, sp_topic, ddata, METRICS, seconds / rounds))
    print(f"json, 1 reading        {j:>12,.0f} readings/CPU s")
    print(f"sparkplug DDATA of {METRICS:<3} {s:>12,.0f} readings/CPU s" + ("  (seq tracked)" if seq else ""))
    print(f"ratio                  {s / j:>12.1f}x  (target >= 3)")
    return s / j


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="Sparkplug B vs JSON decode+route benchmark")
    ap.add_argument("--seconds", type=float, default=2.0, help="CPU seconds per side")
    ap.add_argument("--rounds", type=int, default=10, help="alternations of the two sides")
    ap.add_argument("--seq", action="store_true", help="track seq as a --workers 1 daemon does")
    args = ap.parse_args()
    run(args.seconds, args.rounds, args.seq)
