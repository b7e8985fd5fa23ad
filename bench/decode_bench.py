"""Micro-benchmark of the per-message decoder (not a test): decodes/s and readings/s.

/work/venv/bin/python bench/decode_bench.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import json
import time

from ingest.decoding.decode import Decoder

NOW_NS = 1_764_038_400_000_000_000


def cases() -> dict[str, tuple[str, bytes, int]]:
    single = json.dumps({"ts": 1764038400123, "temperature": 21.5}).encode()
    three = json.dumps({"ts": 1764038400123, "temperature": 21.5, "humidity": 40, "ok": True})
    pack = [{"bn": "dev-0042/", "bt": 1764038400.5, "bu": "Cel", "n": "t0", "v": 20.0}] + [
        {"n": f"t{i}", "v": 20.0 + i / 10} for i in range(1, 10)
    ]
    event = json.dumps({"level": "warning", "code": "E42", "message": "door open"}).encode()
    return {
        "json, 1 reading": ("devices/dev-0042/telemetry", single, 1),
        "json, 3 fields": ("devices/dev-0042/telemetry", three.encode(), 3),
        "senml pack of 10": ("devices/dev-0042/telemetry", json.dumps(pack).encode(), 10),
        "event": ("devices/dev-0042/events", event, 1),
        "config document": ("devices/dev-0042/config", b'{"interval": 5, "mode": "eco"}', 1),
        "status": ("devices/dev-0042/status", b"online", 1),
    }


def run(seconds: float) -> None:
    dec = Decoder()
    for name, (topic, payload, readings) in cases().items():
        dec.decode(topic, payload, NOW_NS)  # warm the topic cache
        n = 0
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            for _ in range(1000):
                dec.decode(topic, payload, NOW_NS)
            n += 1000
        rate = n / (time.perf_counter() - start)
        print(f"{name:18s} {rate:>10,.0f} msgs/s {rate * readings:>12,.0f} readings/s")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="decoder micro-benchmark")
    ap.add_argument("--seconds", type=float, default=2.0)
    run(ap.parse_args().seconds)
