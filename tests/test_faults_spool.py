"""Spool full: with influxd down and a small spool, the daemon stops acknowledging once the spool
is full (batches held in memory, the broker holds the rest of the queue) and drops nothing; when
influxd returns, the spool and the held batches are written in order: exact counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faultkit import (
    Pipeline,
    assert_stored_exactly,
    expected_letters,
    expected_readings,
    metric,
    metric_sum,
)
from tests.servers import Influxd, Mosquitto, wait_for

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres, pytest.mark.influxd]


def fill_the_spool(pipe: Pipeline, influxd: Influxd, devices: int, count: int) -> None:
    # 4 MiB over 4 destinations: the 1 MiB floor each; a 1000-message in-flight window
    daemon = pipe.daemon(IOT_SPOOL_MAX_BYTES=str(4 << 20), IOT_RECEIVE_MAXIMUM="1000").start()
    try:
        influxd.stop()
        config = pipe.fleet(devices=devices, rate=0, count=count, seed=9, malformed=0.01)
        manifest = pipe.publish(config)

        def backpressure() -> bool:
            m = daemon.metrics()
            return (
                metric(m, "iot_spool_full_total", dest="timeseries") >= 1
                and metric(m, "iot_held_batches", dest="timeseries") > 0
                and metric(m, "iot_unacked_messages") > 0
            )

        wait_for(backpressure, 60, "the spool to fill and acknowledgements to stop")
        m = daemon.metrics()
        assert metric(m, "iot_spool_bytes", dest="timeseries") <= 1 << 20
        seen = metric_sum(m, "iot_messages_received_total") + metric_sum(m, "iot_messages_dead_lettered_total")
        assert seen < manifest.sent  # the broker holds the rest
        influxd.start()
        expected, letters = expected_readings(manifest), expected_letters(config, manifest)
        pipe.wait_stored(expected, letters, 180, daemon)
        wait_for(lambda: metric(daemon.metrics(), "iot_unacked_messages") == 0, 60, "every message acknowledged")
        m = daemon.metrics()
    finally:
        rc = daemon.terminate()
    assert rc == 0, daemon.output()[-3000:]
    assert metric(m, "iot_spool_batches", dest="timeseries") == 0
    assert metric(m, "iot_held_batches", dest="timeseries") == 0
    assert_stored_exactly(pipe, manifest, expected, letters)


def test_spool_full_backpressure_drops_nothing(
    tmp_path: Path, mosquitto_server: Mosquitto, influxd: Influxd, postgres_url: str
) -> None:
    pipe = Pipeline("spool", tmp_path, mosquitto_server.url, influxd.create_database("spool"), postgres_url)
    fill_the_spool(pipe, influxd, devices=4, count=3000)


@pytest.mark.soak
def test_spool_full_soak(tmp_path: Path, mosquitto_server: Mosquitto, influxd: Influxd, postgres_url: str) -> None:
    pipe = Pipeline("spoolsoak", tmp_path, mosquitto_server.url, influxd.create_database("spool"), postgres_url)
    fill_the_spool(pipe, influxd, devices=40, count=3000)
