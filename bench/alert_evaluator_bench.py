"""Can one alert evaluator keep up with N workers? Its drain rate as a ratio to one storing worker.

Run by hand (not a test):  .venv/bin/python bench/alert_evaluator_bench.py [--messages 200000]

Method: real Mosquitto and influxd 1.x, a SQLite registry with one threshold rule on
every device's temperature. Two consumers subscribe once with persistent sessions and stop: a worker
(``IOT_ROLE=ingest``: decode, write to InfluxDB, no alerts) and the evaluator (``IOT_ROLE=alerts``:
decode, evaluate the rule, store nothing). N messages are queued for both; then each is started
alone and timed from its first acknowledgement to its last (its ``iot_messages_acked_total``). The
ratio evaluator/worker says how many workers of this speed one evaluator keeps up with. By default
half the readings breach, so each firing alert is updated (a database write) per breaching reading;
``--threshold 100`` measures evaluation without alert writes.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_bench import publish
from sqlalchemy.orm import Session

from registry.alerts import store
from registry.alerts.rules import Rule, RuleKind
from registry.auth import BOOTSTRAP_ACTOR
from registry.db import make_engine, migrate
from tests.daemon_proc import DaemonProcess
from tests.servers import Influxd, Mosquitto, wait_for


def drain(daemon: DaemonProcess, n: int) -> float:
    """Start ``daemon`` on its queued backlog; seconds from its first acknowledgement to the n-th."""
    daemon.start(timeout=120)

    def acked() -> float:
        return daemon.metrics().get("iot_messages_acked_total", 0.0)

    wait_for(lambda: acked() > 0, 120, "the first acknowledgement", interval=0.01)
    t0 = time.perf_counter()
    wait_for(lambda: acked() >= n, 900, "every acknowledgement", interval=0.01)
    dt = time.perf_counter() - t0
    daemon.terminate()
    return dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--publishers", type=int, default=2)
    ap.add_argument("--threshold", type=float, default=25.0, help="fires above this (device k sends 20 + k/10)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="iot-bench-alerts-") as tmp:
        work = Path(tmp)
        broker = Mosquitto(work / "mosquitto").start()
        influxd = Influxd(work / "influxd").start()
        registry = f"sqlite:///{work / 'registry.db'}"
        migrate(registry)
        engine = make_engine(registry)
        with Session(engine) as s, s.begin():
            rule = Rule(
                id=0,
                name="hot",
                kind=RuleKind.THRESHOLD,
                severity="major",
                field="temperature",
                op=">",
                threshold=args.threshold,
            )
            store.add_rule(s, BOOTSTRAP_ACTOR, rule)
        engine.dispose()
        common = {
            "IOT_BROKER_URL": broker.url,
            "IOT_TIMESERIES_URL": influxd.create_database("bench"),
            "IOT_REGISTRY_URL": registry,
            "IOT_TOPIC_ROOT": "bench",
            "IOT_UNKNOWN_DEVICES": "accept",
            "IOT_FLUSH_INTERVAL": "1.0",
        }
        worker = DaemonProcess(work / "worker", {**common, "IOT_ROLE": "ingest", "IOT_CLIENT_ID": "b-ingest"})
        evaluator = DaemonProcess(work / "alerts", {**common, "IOT_ROLE": "alerts", "IOT_CLIENT_ID": "b-alerts"})
        per = args.messages // args.publishers
        n = per * args.publishers
        try:
            for d in (worker, evaluator):  # create both persistent sessions, then stop
                d.start()
                d.terminate()
            with mp.Pool(args.publishers) as pool:
                pool.starmap(publish, [(broker.port, w, per, 1, args.devices) for w in range(args.publishers)])
            print(f"queued {n} messages for each consumer")
            t_worker = drain(worker, n)
            t_eval = drain(evaluator, n)
            with Session(make_engine(registry)) as s:
                opened = len(store.load_open(s))
        finally:
            worker.kill()
            evaluator.kill()
            influxd.stop()
            broker.stop()
    print(f"worker (stores to influxd, no alerts): {n / t_worker:,.0f} msg/s")
    print(f"evaluator (one rule on every device, stores nothing): {n / t_eval:,.0f} msg/s; {opened} alerts open")
    print(f"ratio evaluator / worker: {t_worker / t_eval:.2f}x")


if __name__ == "__main__":
    main()
