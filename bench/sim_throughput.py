"""Simulator throughput: pure generation, and publishing at ``--rate 0`` to a real broker.

    python bench/sim_throughput.py                       # generation only
    python bench/sim_throughput.py --broker mqtt://127.0.0.1:1883 --devices 50 --seconds 10

Prints one JSON object per measurement (messages/s and readings/s).
"""

from __future__ import annotations

import argparse
import json
import time

from simulators.fleet import FleetConfig, generate
from simulators.runner import run_fleet


def bench_generate(fmt: str, pack: int, devices: int, count: int) -> dict[str, object]:
    config = FleetConfig(devices=devices, count=count, rate=0.0, format=fmt, pack=pack)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    n = readings = 0
    for m in generate(config):
        n += 1
        readings += m.readings
    dt = time.perf_counter() - t0
    return {
        "bench": "generate",
        "format": fmt,
        "pack": pack,
        "messages": n,
        "msg_per_s": round(n / dt),
        "readings_per_s": round(readings / dt),
    }


def bench_publish(broker: str, fmt: str, pack: int, devices: int, seconds: float) -> dict[str, object]:
    config = FleetConfig(
        devices=devices,
        duration=seconds,
        rate=0.0,
        format=fmt,  # type: ignore[arg-type]
        pack=pack,
        id_prefix="bench-",
        start_ms=int(time.time() * 1000),
    )
    m = run_fleet(config, broker)
    acked = sum(m.totals.messages.values())
    readings = sum(m.totals.readings.values())
    return {
        "bench": "publish",
        "format": fmt,
        "pack": pack,
        "devices": devices,
        "acked": acked,
        "unacked": m.unacked,
        "elapsed_s": round(m.elapsed_s, 2),
        "msg_per_s": round(acked / m.elapsed_s),
        "readings_per_s": round(readings / m.elapsed_s),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--broker", help="mqtt://host:port; without it only generation is measured")
    ap.add_argument("--devices", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--count", type=int, default=5000, help="messages per device (generation)")
    args = ap.parse_args()
    for fmt, pack in (("json", 1), ("senml", 1), ("senml", 20)):
        print(json.dumps(bench_generate(fmt, pack, args.devices, args.count)), flush=True)
        if args.broker:
            print(json.dumps(bench_publish(args.broker, fmt, pack, args.devices, args.seconds)), flush=True)


if __name__ == "__main__":
    main()
