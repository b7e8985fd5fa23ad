"""In-process cost of a mapped message (not a test): Tasmota SENSOR messages through the
``tasmota`` preset vs the same readings in the built-in contract, decoded and routed (Router.handle:
decode, directory check, batching), as a ratio in one run.

/work/venv/bin/python bench/mappings_bench.py [--seconds 2]

The two payloads carry the same nine ENERGY readings. The contract's is the flat JSON a device
written for it sends (``ts`` in ms, one field per reading, no units); the preset's is Tasmota's own
(nested ``ENERGY`` object, local ``Time`` read in a time zone, a unit per reading, so one point per
unit as SenML would store it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingest.decoding.decode import Decoder
from ingest.decoding.mappings import parse_mappings
from ingest.decoding.topics import Topics
from ingest.routing import Router

NOW_NS = 1_764_038_400_000_000_000
ENERGY = {
    "Total": 0.003,
    "Yesterday": 0.0,
    "Today": 0.003,
    "Power": 12,
    "ApparentPower": 20,
    "ReactivePower": 16,
    "Factor": 0.6,
    "Voltage": 234,
    "Current": 0.085,
}
TASMOTA = json.dumps({"Time": "2025-11-25T03:00:00", "ENERGY": {"TotalStartTime": "2020-12-31T10:38:40", **ENERGY}})
CONTRACT = json.dumps({"ts": 1764036000000, **{f"ENERGY.{k}": v for k, v in ENERGY.items()}})


def rate(router: Router, topic: str, payload: bytes, seconds: float) -> float:
    router.handle(topic, payload, None, NOW_NS)  # warm the topic cache
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(1000):
            router.handle(topic, payload, None, NOW_NS)
        n += 1000
    return n / (time.perf_counter() - start)


def run(seconds: float) -> None:
    rules = parse_mappings('[[mapping]]\npreset = "tasmota"\ntimezone = "Europe/Berlin"\n')
    for label, decoder in (("contract only", Decoder()), ("with mappings", Decoder(topics=Topics(rules)))):
        contract = rate(
            Router(decoder, batch_size=5000, flush_interval=60), "devices/plug1/telemetry", CONTRACT.encode(), seconds
        )
        if label == "contract only":
            print(f"built-in contract ({label}): {contract:>10,.0f} msgs/s")
            continue
        print(f"built-in contract ({label}): {contract:>10,.0f} msgs/s")
        mapped = rate(
            Router(decoder, batch_size=5000, flush_interval=60), "tele/plug1/SENSOR", TASMOTA.encode(), seconds
        )
        print(f"tasmota preset:                    {mapped:>10,.0f} msgs/s")
        print(f"ratio tasmota / contract:          {mapped / contract:.2f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="mapped vs contract decode+route cost")
    ap.add_argument("--seconds", type=float, default=2.0)
    run(ap.parse_args().seconds)
