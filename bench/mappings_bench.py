"""In-process cost of a mapped message (not a test): Tasmota SENSOR messages through the
``tasmota`` preset vs the same readings in the built-in contract, decoded and routed (Router.handle:
decode, directory check, batching) and encoded as line protocol, as ratios in one run, with the
daemon's GC settings (``tune_gc``).

/work/venv/bin/python bench/mappings_bench.py [--seconds 2]

The two payloads carry the same nine ENERGY readings. The contract's is the flat JSON a device
written for it sends (``ts`` in ms, one field per reading, no units); the preset's is Tasmota's own
(nested ``ENERGY`` object, local ``Time`` read in a time zone, a unit per reading, so one point per
unit as SenML would store it). The third payload is the same readings with their units as a SenML
pack in the built-in contract: the same seven points.
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
from ingest.mqtt.options import tune_gc
from ingest.routing import Router
from ingest.stores.lineprotocol import encode_batch

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
UNITS = {"Total": "kWh", "Yesterday": "kWh", "Today": "kWh", "Power": "W", "ApparentPower": "VA"}
UNITS |= {"ReactivePower": "var", "Voltage": "V", "Current": "A"}
SENML = json.dumps(
    [{"bn": "plug1:", "bt": 1764036000, "n": "ENERGY.Total", "u": "kWh", "v": ENERGY["Total"]}]
    + [{"n": f"ENERGY.{k}", "v": v, **({"u": UNITS[k]} if k in UNITS else {})} for k, v in list(ENERGY.items())[1:]]
)


def rate(router: Router, topic: str, payload: bytes, seconds: float) -> float:
    assert router.handle(topic, payload, None, NOW_NS) is None  # warm the topic cache
    assert not router.counts.keys() - {("sensor_readings", "received")}, router.counts  # no dead letters
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(1000):
            full = router.handle(topic, payload, None, NOW_NS)
            if full is not None:
                encode_batch(full.items)
        n += 1000
    return n / (time.perf_counter() - start)


def run(seconds: float) -> None:
    tune_gc()
    rules = parse_mappings('[[mapping]]\npreset = "tasmota"\ntimezone = "Europe/Berlin"\n')

    def router(decoder: Decoder) -> Router:
        return Router(decoder, batch_size=5000, flush_interval=60)

    contract = rate(router(Decoder()), "devices/plug1/telemetry", CONTRACT.encode(), seconds)
    senml = rate(router(Decoder()), "devices/plug1/telemetry", SENML.encode(), seconds)
    mapped = rate(router(Decoder(topics=Topics(rules))), "tele/plug1/SENSOR", TASMOTA.encode(), seconds)
    print(f"built-in contract, flat JSON (1 point):        {contract:>10,.0f} msgs/s")
    print(f"built-in contract, SenML with units (7 points): {senml:>10,.0f} msgs/s")
    print(f"tasmota preset (7 points):                      {mapped:>10,.0f} msgs/s")
    print(f"ratio tasmota / flat contract: {mapped / contract:.2f}; tasmota / SenML contract: {mapped / senml:.2f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="mapped vs contract decode+route cost")
    ap.add_argument("--seconds", type=float, default=2.0)
    run(ap.parse_args().seconds)
