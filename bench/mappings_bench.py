"""In-process cost of a mapped message (not a test): Tasmota SENSOR messages through the
``tasmota`` preset vs the same readings in the built-in contract, decoded and routed (Router.handle:
decode, directory check, batching) and encoded as line protocol, as ratios in one run, with the
daemon's GC settings (``tune_gc``).

/work/venv/bin/python bench/mappings_bench.py [--seconds 2] [--rounds 3]

The two payloads carry the same nine ENERGY readings. The contract's is the flat JSON a device
written for it sends (``ts`` in ms, one field per reading, no units); the preset's is Tasmota's own
(nested ``ENERGY`` object, local ``Time`` read in a time zone, a unit per reading). The preset's
units are declared (recorded once in ``field_units``, not tags), so it is one point as well. The
third payload is the same readings with their units as a SenML pack in the built-in contract: a
unit is a tag there, so seven points. The cases alternate for ``--rounds`` rounds (the machine is
shared); each case's best round is reported, as messages/s and as CPU µs per message.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
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


def rate(router: Router, topic: str, payload: bytes, seconds: float) -> tuple[float, float]:
    """(messages/s, CPU µs per message)."""
    assert router.handle(topic, payload, None, NOW_NS) is None  # warm the topic cache
    assert not router.counts.keys() - {("sensor_readings", "received")}, router.counts  # no dead letters
    n = 0
    start, cpu = time.perf_counter(), time.process_time()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(1000):
            full = router.handle(topic, payload, None, NOW_NS)
            if full is not None:
                encode_batch(full.items)
        n += 1000
    return n / (time.perf_counter() - start), (time.process_time() - cpu) / n * 1e6


def run(seconds: float, rounds: int) -> None:
    tune_gc()
    rules = parse_mappings('[[mapping]]\npreset = "tasmota"\ntimezone = "Europe/Berlin"\n')

    def router(decoder: Decoder) -> Router:
        return Router(decoder, batch_size=5000, flush_interval=60)

    def contract() -> Decoder:
        return Decoder()

    def mapped() -> Decoder:
        return Decoder(topics=Topics(rules))

    cases: dict[str, tuple[Callable[[], Decoder], str, str]] = {
        "built-in contract, flat JSON (1 point)": (contract, "devices/plug1/telemetry", CONTRACT),
        "built-in contract, SenML with units (7 points)": (contract, "devices/plug1/telemetry", SENML),
        "tasmota preset (1 point, declared units)": (mapped, "tele/plug1/SENSOR", TASMOTA),
    }
    best: dict[str, tuple[float, float]] = {}
    for _ in range(rounds):
        for name, (decoder, topic, payload) in cases.items():
            got = rate(router(decoder()), topic, payload.encode(), seconds)
            best[name] = max(best.get(name, got), got)
    for name, (msgs, cpu_us) in best.items():
        print(f"{name + ':':<50} {msgs:>10,.0f} msgs/s  {cpu_us:5.2f} us CPU/msg")
    (flat, c_cpu), (senml, _), (tasmota, m_cpu) = best.values()
    print(f"ratio tasmota / flat contract: {tasmota / flat:.2f} (CPU {c_cpu / m_cpu:.2f}); ", end="")
    print(f"tasmota / SenML contract: {tasmota / senml:.2f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="mapped vs contract decode+route cost")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    run(args.seconds, args.rounds)
