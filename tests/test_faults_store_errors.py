"""A store error that is not a connection error must not stall anything (issue 10, item 1).

Reproduced on the real PostgreSQL: the ``dead_letters`` table is renamed away mid-stream, 20
malformed and 50 good messages arrive. Before, the dead-letter writer thread died silently,
/healthz said 200 and none of the 20 dead letters was ever stored. Now the good readings flow,
the dead letters are kept in the spool (acknowledged, so the broker window never fills), /healthz
and ``iot status`` say degraded and why, and once the table is back exactly 20 dead letters and
50 readings are stored."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psycopg
import pytest

from tests.faultkit import Pipeline, dead_letters, metric, publish_raw
from tests.servers import Mosquitto, wait_for
from tests.test_metrics_http import get, status

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres, pytest.mark.influxd]


def sql(registry_url: str, statement: str) -> None:
    with psycopg.connect(registry_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(statement.encode())


def test_dead_letters_table_renamed_mid_stream(
    tmp_path: Path, mosquitto_server: Mosquitto, influxdb1_url: str, postgres_url: str
) -> None:
    pipe = Pipeline("dlrename", tmp_path, mosquitto_server.url, influxdb1_url, postgres_url)
    daemon = pipe.daemon(IOT_UNKNOWN_DEVICES="register").start()
    healthz = f"http://127.0.0.1:{daemon.port}/healthz"
    good_device, bad_device = f"{pipe.prefix}good", f"{pipe.prefix}bad"
    base_ms = int(time.time() * 1000) - 60_000
    bad = [(f"{pipe.topic_root}/{bad_device}/telemetry", f"not json #{i}".encode()) for i in range(20)]
    good = [
        (f"{pipe.topic_root}/{good_device}/telemetry", json.dumps({"t": float(i), "ts": base_ms + i}).encode())
        for i in range(50)
    ]
    try:
        sql(postgres_url, "ALTER TABLE dead_letters RENAME TO dead_letters_away")
        interleaved = [m for pair in zip(bad, good[:20], strict=True) for m in pair] + good[20:]
        publish_raw(pipe.broker_url, interleaved)

        # the good readings flow while the dead letters cannot be stored
        expected = {good_device: {"telemetry": 50, "metrics": 0, "events": 0}}
        wait_for(lambda: pipe.readings() == expected, 60, "the 50 good readings to be stored")
        wait_for(lambda: get(healthz)[0] == 503, 30, "/healthz to say degraded")
        health = json.loads(get(healthz)[2])
        dl = health["stores"]["deadletters"]
        assert health["status"] == "degraded" and dl["up"] is False
        assert dl["state"] == "needs_operator", dl
        assert "dead_letters" in dl["reason"] and "operator action needed" in dl["reason"]
        assert any(r.startswith("deadletters: ") for r in health["reasons"])
        assert health["stores"]["timeseries"]["up"] is True
        # every message is settled (dead letters safe in the spool): the broker window stays open
        wait_for(lambda: metric(daemon.metrics(), "iot_unacked_messages") == 0, 30, "every message acknowledged")
        assert daemon.metrics()['iot_spool_batches{dest="deadletters"}'] >= 1

        st = status(daemon)
        assert st.returncode == 1 and st.stdout.startswith("status: degraded")
        assert "degraded: deadletters: refused, waiting will not fix it" in st.stdout
        assert "Traceback" not in st.stderr

        sql(postgres_url, "ALTER TABLE dead_letters_away RENAME TO dead_letters")
        store = dead_letters(pipe.registry_url)
        try:
            wait_for(lambda: store.count() == 20, 60, "the 20 dead letters to be stored")
        finally:
            store.engine.dispose()
        wait_for(lambda: get(healthz)[0] == 200, 30, "/healthz to be ok again")
        m = daemon.metrics()
    finally:
        rc = daemon.terminate()
    assert rc == 0, daemon.output()[-3000:]
    assert pipe.readings() == expected
    store = dead_letters(pipe.registry_url)
    try:
        letters = store.list(limit=100)
        assert len(letters) == 20 and store.count() == 20
        assert {r.payload for r in letters} == {p for _, p in bad}
        assert {r.reason for r in letters} == {"invalid_json"}
    finally:
        store.engine.dispose()
    assert metric(m, "iot_store_errors_total", dest="deadletters", error="StoreNeedsOperator") >= 1
    assert metric(m, "iot_spool_batches", dest="deadletters") == 0
    log = daemon.output()
    assert log.count("deadletters store refuses us and waiting will not fix it") == 1, log[-3000:]
    assert "deadletters store is back" in log
