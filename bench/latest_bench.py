"""`iot devices show` cost against a measurement another device filled with field keys (run by
hand, not a test; issue 7 item 8).

    .venv/bin/python bench/latest_bench.py [--keys 32000] [--rounds 5]

Starts a throwaway influxd, writes a victim's two fields and one attacker point per 4,000
keys, then times InfluxDB1Store.latest() (the field index: the device's own keys only)
against the two readings that depend on the measurement's key count: the former one
statement per field key, and ``SELECT last(*)``. Reported as ratios to latest() with no
attacker keys at all, measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.model import Point
from ingest.stores.influxdb1 import InfluxDB1Store, quote_ident
from tests.servers import Influxd

M = "sensor_readings"


def timed(fn: object, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def per_field_statements(store: InfluxDB1Store) -> None:
    """What latest() did before: SHOW FIELD KEYS, then one last() per key of the measurement."""
    fields = sorted(store._reader.field_types(M))
    dev = "\"device_id\"::tag = 'victim'"
    store._select("; ".join(f"SELECT last({quote_ident(f)}) FROM {M} WHERE {dev}" for f in fields))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=32_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = Influxd(Path(tmp)).start()
        try:
            store = InfluxDB1Store.from_url(server.create_database("bench"))
            store.connect()
            t0 = time.time_ns() - 3600 * 10**9
            store.write([Point(M, "victim", {"temperature": 20.5, "door": "open"}, t0)])
            base = timed(lambda: store.latest(M, "victim"), args.rounds)
            per_point = 4000
            for j in range(0, args.keys, per_point):
                keys = range(j, min(args.keys, j + per_point))
                store._send([f"{M},device_id=attk " + ",".join(f"k{i}=1" for i in keys) + f" {t0 + j}"])
            assert store.latest(M, "victim") == {"temperature": (t0, 20.5), "door": (t0, "open")}
            new = timed(lambda: store.latest(M, "victim"), args.rounds)
            old = timed(lambda: per_field_statements(store), args.rounds)
            star = timed(
                lambda: store._select(f"SELECT last(*) FROM {M} WHERE \"device_id\"::tag = 'victim'"), args.rounds
            )
            print(f"{args.keys} attacker field keys; medians of {args.rounds} rounds")
            print(f"latest() with no attacker keys     {base * 1000:8.1f} ms  (1.0x)")
            print(f"latest() via the field index       {new * 1000:8.1f} ms  ({new / base:.1f}x)")
            print(f"one statement per measurement key  {old * 1000:8.1f} ms  ({old / base:.1f}x)")
            print(f"SELECT last(*)                     {star * 1000:8.1f} ms  ({star / base:.1f}x)")
            store.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
