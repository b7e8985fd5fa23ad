"""Partial rejection: InfluxDB refuses one point of a batch (a field-type conflict). Exactly that
message is dead-lettered with reason store_rejected; every other point of the batch is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.model import Reason
from tests.faultkit import Pipeline, dead_letters, expected_letters, expected_readings, metric, publish_raw
from tests.servers import Mosquitto

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres, pytest.mark.influxd]


def test_field_type_conflict_dead_letters_only_that_message(
    tmp_path: Path, mosquitto_server: Mosquitto, influxdb1_url: str, postgres_url: str
) -> None:
    pipe = Pipeline("partial", tmp_path, mosquitto_server.url, influxdb1_url, postgres_url)
    daemon = pipe.daemon(IOT_FLUSH_INTERVAL="1.0").start()  # the three messages below share a batch
    try:
        config = pipe.fleet(devices=2, rate=0, count=200, seed=3, malformed=0.03)
        manifest = pipe.publish(config)
        expected, letters = expected_readings(manifest), expected_letters(config, manifest)
        pipe.wait_stored(expected, letters, 60, daemon)  # the field types are set now

        sample = next(
            s
            for s in manifest.samples
            if s["kind"] == "telemetry" and any(type(v) is float for v in s["fields"].values())
        )
        device = sample["device_id"]
        field = next(k for k, v in sample["fields"].items() if type(v) is float)
        ts = config.start_ms + 86_400_000  # after every fleet reading
        topic = f"{pipe.topic_root}/{device}/telemetry"
        bad = json.dumps({"ts": ts + 2, field: "not-a-number"}).encode()
        publish_raw(
            pipe.broker_url,
            [
                (topic, json.dumps({"ts": ts + 1, field: 1.5}).encode()),
                (topic, bad),
                (topic, json.dumps({"ts": ts + 3, field: 2.5}).encode()),
            ],
        )
        expected[device]["telemetry"] += 2
        pipe.wait_stored(expected, letters + 1, 60, daemon)
        m = daemon.metrics()
    finally:
        rc = daemon.terminate()
    assert rc == 0, daemon.output()[-3000:]
    assert metric(m, "iot_items_rejected_total", dest="timeseries") == 1
    assert pipe.readings() == expected
    store = dead_letters(pipe.registry_url)
    try:
        assert store.count() == letters + 1
        [letter] = store.list(reason=str(Reason.STORE_REJECTED))
    finally:
        store.engine.dispose()
    assert (letter.topic, letter.payload, letter.device_id) == (topic, bad, device)
    assert field in letter.detail
