"""Time-series write throughput (run by hand, not a test).

    /work/venv/bin/python bench/timeseries_bench.py [--points 200000] [--batch 5000]
        [--url influxdb1://127.0.0.1:8086/bench]

Reports encode-only points/s and points/s written through InfluxDB1Store in batches (a
throwaway influxd is started when no --url is given), plus the embedded SQLite store.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.model import Point
from core.stores import TimeSeriesStore
from ingest.stores import open_timeseries
from ingest.stores.lineprotocol import encode_batch


def make_points(n: int, devices: int = 1000) -> list[Point]:
    rnd = random.Random(7)
    t0 = time.time_ns() - n * 1_000_000
    return [
        Point(
            "sensor_readings",
            f"dev-{i % devices:04d}",
            {
                "temperature": round(rnd.uniform(15, 30), 2),
                "humidity": round(rnd.uniform(20, 80), 1),
                "door": rnd.random() < 0.5,
            },
            t0 + i * 1_000_000,
            {"site": f"site-{i % 7}", "device_type": "thermo"},
        )
        for i in range(n)
    ]


def bench_encode(points: list[Point], batch: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(points), batch):
        encode_batch(points[i : i + batch])
    return len(points) / (time.perf_counter() - start)


def bench_store(store: TimeSeriesStore, points: list[Point], batch: int) -> float:
    store.connect()
    try:
        start = time.perf_counter()
        for i in range(0, len(points), batch):
            rejected = store.write(points[i : i + batch])
            assert not rejected, rejected[:1]
        rate = len(points) / (time.perf_counter() - start)
        assert store.count("sensor_readings") == 3 * len(points)
        return rate
    finally:
        store.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--url", default=None, help="influxdb1:// URL (default: start a throwaway influxd)")
    args = ap.parse_args()
    points = make_points(args.points)
    print(f"encode only:       {bench_encode(points, args.batch):>10,.0f} points/s")
    with tempfile.TemporaryDirectory() as tmp:
        emb = open_timeseries("embedded", data_dir=Path(tmp))
        print(f"embedded SQLite:   {bench_store(emb, points, args.batch):>10,.0f} points/s")
        server = None
        url = args.url
        if url is None:
            from tests.servers import Influxd

            server = Influxd(Path(tmp) / "influxd").start()
            url = server.url("bench")
        try:
            rate = bench_store(open_timeseries(url), points, args.batch)
            print(f"influxdb1 (write): {rate:>10,.0f} points/s  ({args.batch}-point batches)")
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
