"""CPU cost of line-protocol encoding per point (not a test): ``encode_batch`` (float texts cached)
against the same batch loop around ``encode_point_reference`` (the per-field encoder it replaced),
as ratios new/old measured in the same run, sides alternating, with the daemon's GC settings.

/work/venv/bin/python bench/lineprotocol_bench.py [--points 20000] [--batch 5000] [--reps 5]

Cases:
- ``tasmota``: Tasmota SENSOR messages (``bench/mqtt_pub.energy``) decoded and routed through the
  ``tasmota`` preset, so the points are the daemon's own: nine float ENERGY fields, 100 plugs;
- ``contract-1``: one field per point (``temperature``, one decimal, 15-30), 100 devices;
- ``random-3dp``: nine fields, each a fresh value with three decimals (0-300): few repeats, the
  cache's worst realistic case;
- ``random-full``: nine fields of full-precision random floats (no repeats at all).

Every rep encodes fresh points (the same kind). The cache lives as long as the process (as in
the daemon); the check that both sides give the same lines runs once first (one pass over each
case, in the same batches). Each rep
prints µs per point (``time.process_time``) for both sides and the ratio; the last line gives the
median ratio per case.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from mqtt_pub import ENERGY, energy

from core.model import Point
from ingest.decoding.decode import Decoder
from ingest.decoding.mappings import parse_mappings
from ingest.decoding.topics import Topics
from ingest.mqtt.options import tune_gc
from ingest.routing import Router
from ingest.stores.lineprotocol import encode_batch, encode_each, encode_point_reference

BASE_NS = 1_764_038_400_000_000_000
Batch = tuple[list[Point], list[str], list[tuple[Point, str]]]


def reference_batch(points: Sequence[Point]) -> Batch:
    """``encode_batch`` as it was: the per-field encoder, point by point."""
    return encode_each(points, encode_point_reference)


def tasmota(n: int, start: int) -> list[Point]:
    router = Router(
        Decoder(topics=Topics(parse_mappings('[[mapping]]\npreset = "tasmota"\n'))), batch_size=1000, flush_interval=60
    )
    out: list[Point] = []
    for i in range(start, start + n):
        topic, payload = energy(i, 100, BASE_NS, "tasmota")
        full = router.handle(topic, payload, None, BASE_NS)
        if full is not None:
            out.extend(full.items)
    return out


def contract_1(n: int, rnd: random.Random) -> list[Point]:
    return [
        Point("sensor_readings", f"dev{i % 100}", {"temperature": round(rnd.uniform(15, 30), 1)}, BASE_NS + i)
        for i in range(n)
    ]


def nine(n: int, value: Callable[[], float]) -> list[Point]:
    keys = [f"ENERGY.{k}" for k in ENERGY]
    return [Point("sensor_readings", f"plug{i % 100}", {k: value() for k in keys}, BASE_NS + i) for i in range(n)]


def per_point(encode: Callable[[Sequence[Point]], Batch], points: list[Point], batch: int) -> float:
    t0 = time.process_time()
    for i in range(0, len(points), batch):
        encode(points[i : i + batch])
    return (time.process_time() - t0) / len(points) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    tune_gc()
    rnd = random.Random(7)
    makers: dict[str, Callable[[int], list[Point]]] = {
        "tasmota": lambda rep: tasmota(a.points, rep * a.points),
        "contract-1": lambda rep: contract_1(a.points, rnd),
        "random-3dp": lambda rep: nine(a.points, lambda: round(rnd.uniform(0, 300), 3)),
        "random-full": lambda rep: nine(a.points, lambda: rnd.uniform(0, 300)),
    }
    for name, make in makers.items():
        points = make(0)
        for i in range(0, len(points), a.batch):
            chunk = points[i : i + a.batch]
            assert encode_batch(chunk)[1] == reference_batch(chunk)[1], name
    ratios: dict[str, list[float]] = {name: [] for name in makers}
    for name, make in makers.items():  # one case at a time: the cache is the process's, as in the daemon
        for rep in range(1, a.reps + 1):
            points = make(rep)  # fresh points: the daemon never encodes the same ones twice
            if rep % 2:
                old = per_point(reference_batch, points, a.batch)
                new = per_point(encode_batch, points, a.batch)
            else:
                new = per_point(encode_batch, points, a.batch)
                old = per_point(reference_batch, points, a.batch)
            ratios[name].append(new / old)
            print(f"rep {rep} {name:12s} old {old:5.2f} us/point  new {new:5.2f} us/point  new/old {new / old:.2f}")
    print("median new/old: " + "  ".join(f"{k} {statistics.median(v):.2f}" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
