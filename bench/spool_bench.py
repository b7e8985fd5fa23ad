"""Spool record encoding (not a test): versioned JSON records against the pickles they replaced.

.venv/bin/python bench/spool_bench.py [--points 5000] [--seconds 2]
"""

from __future__ import annotations

import argparse
import pickle
import time
from collections.abc import Callable

from core.model import Point
from ingest.writing.spool_records import Origin, Record, decode, encode


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of ``fn`` over about ``seconds``."""
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        n += 1
    return n / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=5000)
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()
    items = [
        Point(
            "sensor_readings", f"dev-{i % 100:04d}", {"temperature": 20 + i / 100, "humidity": 40.0}, i, {"site": "a"}
        )
        for i in range(args.points)
    ]
    origins: list[Origin] = [
        (f"devices/dev-{i % 100:04d}/telemetry", b'{"temperature":%.2f,"humidity":40}' % (20 + i / 100), 1.0 + i)
        for i in range(args.points)
    ]
    record: Record = (list(items), origins, None)
    data = encode(*record)
    pickled = pickle.dumps(record, protocol=5)
    assert decode(data) == record
    enc_json, enc_pickle = (
        rate(lambda: encode(*record), args.seconds),
        rate(lambda: pickle.dumps(record, 5), args.seconds),
    )
    dec_json, dec_pickle = rate(lambda: decode(data), args.seconds), rate(lambda: pickle.loads(pickled), args.seconds)
    print(f"batch of {args.points} points: JSON record {len(data):,} bytes, pickle {len(pickled):,} bytes")
    for what, mine, theirs in (("encode", enc_json, enc_pickle), ("decode", dec_json, dec_pickle)):
        n = args.points
        print(f"{what}: JSON {mine * n:,.0f} points/s, pickle {theirs * n:,.0f} points/s ({mine / theirs:.2f}x)")


if __name__ == "__main__":
    main()
