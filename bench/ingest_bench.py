"""End-to-end ingest throughput: real Mosquitto + influxd + `iot ingest run`, QoS 1.

Run by hand (not a test):  .venv/bin/python bench/ingest_bench.py [--messages 200000] [--pack 10]

Method: the daemon subscribes once (persistent session) and is stopped; the load is published at
QoS 1 into Mosquitto, which queues it for the daemon's session; the daemon is started again and
timed from start until InfluxDB holds every reading (counted with InfluxQL). This measures the
daemon alone, not the publisher. ``--live`` instead publishes while the daemon runs, from
``--publishers`` processes, and times first publish → last reading stored.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.daemon_proc import DaemonProcess
from tests.servers import Influxd, Mosquitto, wait_for

T0 = 1_764_000_000_000_000_000


def payloads(worker: int, n: int, pack: int, devices: int) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        dev = f"bench-{worker}-{i % devices}"
        ts = T0 + (worker * 10_000_000 + i) * 1000
        if pack == 1:
            body = {"ts": ts, "temperature": 20.0 + (i % 100) / 10}
            out.append((f"bench/{dev}/telemetry", json.dumps(body).encode()))
        else:
            recs: list[dict[str, object]] = [{"bn": f"{dev}:", "bt": ts / 1e9, "n": "s0", "u": "Cel", "v": 20.5}]
            recs += [{"n": f"s{k}", "u": "Cel", "v": 20.0 + k} for k in range(1, pack)]
            out.append((f"bench/{dev}/telemetry", json.dumps(recs).encode()))
    return out


def publish(port: int, worker: int, n: int, pack: int, devices: int) -> float:
    msgs = payloads(worker, n, pack, devices)
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{worker}", protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(2000)
    c.connect("127.0.0.1", port)
    c.loop_start()
    t = time.perf_counter()
    for start in range(0, len(msgs), 20_000):
        infos = [c.publish(topic, body, qos=1) for topic, body in msgs[start : start + 20_000]]
        for info in infos:
            info.wait_for_publish(120)
    dt = time.perf_counter() - t
    c.disconnect()
    c.loop_stop()
    return dt


def count(influxd: Influxd, db: str) -> int:
    r = influxd.query("SELECT count(*) FROM sensor_readings", db)
    series = r["results"][0].get("series")
    if not series:
        return 0
    return int(sum(v for v in series[0]["values"][0][1:] if v))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--pack", type=int, default=1, help="SenML records per message (1 = plain JSON)")
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--publishers", type=int, default=2)
    ap.add_argument("--live", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="iot-bench-") as tmp:
        work = Path(tmp)
        broker = Mosquitto(work / "mosquitto").start()
        influxd = Influxd(work / "influxd").start()
        url = influxd.create_database("bench")
        env = {
            "IOT_BROKER_URL": broker.url,
            "IOT_TIMESERIES_URL": url,
            "IOT_TOPIC_ROOT": "bench",
            "IOT_CLIENT_ID": "bench-ingest",
            "IOT_FLUSH_INTERVAL": "1.0",
            "IOT_UNKNOWN_DEVICES": "accept",
        }
        daemon = DaemonProcess(work / "daemon", env)
        per = args.messages // args.publishers
        total_readings = per * args.publishers * args.pack
        try:
            daemon.start()
            if not args.live:
                daemon.terminate()
                with mp.Pool(args.publishers) as pool:
                    pub = pool.starmap(
                        publish, [(broker.port, w, per, args.pack, args.devices) for w in range(args.publishers)]
                    )
                print(f"queued {per * args.publishers} messages in Mosquitto in {max(pub):.1f}s")
                t = time.perf_counter()  # includes the daemon's start-up (about 1 s)
                daemon.start(timeout=120)
            else:
                t = time.perf_counter()
                with mp.Pool(args.publishers) as pool:
                    pool.starmap(
                        publish, [(broker.port, w, per, args.pack, args.devices) for w in range(args.publishers)]
                    )
            wait_for(lambda: count(influxd, "bench") >= total_readings, 900, "all readings", interval=0.25)
            dt = time.perf_counter() - t
            stored = count(influxd, "bench")
        finally:
            daemon.kill()
            influxd.stop()
            broker.stop()
    msgs = per * args.publishers
    mode = "live" if args.live else "drain"
    print(
        f"{mode}: {msgs} messages, {total_readings} readings (pack {args.pack}) stored={stored} "
        f"in {dt:.2f}s -> {msgs / dt:,.0f} msg/s, {total_readings / dt:,.0f} readings/s"
    )


if __name__ == "__main__":
    main()
