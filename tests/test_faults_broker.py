"""Broker restart: Mosquitto (persistence on) is stopped and started again while the daemon drains
a queued burst. The daemon reconnects with backoff, resumes its persistent session (the broker
kept the queue and the unacknowledged deliveries) and nothing is lost or stored twice.

The publishers never straddle the restart (a publisher whose PUBACK is lost would make the
manifest undercount): the burst is queued for the daemon's session while the daemon is away."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faultkit import (
    Pipeline,
    assert_stored_exactly,
    expected_letters,
    expected_readings,
    metric,
)
from tests.servers import Mosquitto, wait_for

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres, pytest.mark.influxd]


def restart_mid_drain(pipe: Pipeline, broker: Mosquitto, restarts: int, devices: int, count: int) -> None:
    # a small in-flight window keeps the daemon draining for a while
    pipe.daemon(IOT_RECEIVE_MAXIMUM="500").start().terminate()  # creates the persistent session
    config = pipe.fleet(devices=devices, rate=0, count=count, seed=7, malformed=0.02, duplicates=0.02)
    manifest = pipe.publish(config)
    daemon = pipe.daemon(IOT_RECEIVE_MAXIMUM="500").start()
    try:
        for k in range(restarts):
            written = (k + 1) * manifest.sent // (restarts + 2)
            wait_for(
                lambda: metric(daemon.metrics(), "iot_messages_acked_total") > written,  # noqa: B023
                90,
                "part of the burst to be stored",
            )
            # Mosquitto 2.0.11 ignores Receive Maximum for a resumed session's backlog, so the whole burst
            # may already be delivered: what matters is that part of it is still unacknowledged
            acked = metric(daemon.metrics(), "iot_messages_acked_total")
            assert acked < manifest.sent, "the daemon had stored the whole burst before the broker went away"
            broker.stop()  # SIGTERM: mosquitto saves its queues
            broker.start()
            wait_for(
                lambda: metric(daemon.metrics(), "iot_broker_connects_total") >= k + 2,  # noqa: B023
                60,
                "the daemon to reconnect",
            )
        expected, letters = expected_readings(manifest), expected_letters(config, manifest)
        pipe.wait_stored(expected, letters, 120, daemon)
        m = daemon.metrics()
    finally:
        rc = daemon.terminate()
    assert rc == 0, daemon.output()[-3000:]
    assert metric(m, "iot_broker_disconnects_total") >= restarts
    assert daemon.output().count("session present: True") >= restarts + 1  # resumed, not a fresh session

    assert_stored_exactly(pipe, manifest, expected, letters)


def test_broker_restart_mid_stream_loses_nothing(
    tmp_path: Path, mosquitto: Mosquitto, influxdb1_url: str, postgres_url: str
) -> None:
    pipe = Pipeline("broker", tmp_path, mosquitto.url, influxdb1_url, postgres_url)
    restart_mid_drain(pipe, mosquitto, restarts=1, devices=10, count=2000)


@pytest.mark.soak
def test_repeated_broker_restarts_soak(
    tmp_path: Path, mosquitto: Mosquitto, influxdb1_url: str, postgres_url: str
) -> None:
    pipe = Pipeline("brokersoak", tmp_path, mosquitto.url, influxdb1_url, postgres_url)
    restart_mid_drain(pipe, mosquitto, restarts=4, devices=50, count=2000)
