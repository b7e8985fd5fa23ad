"""Crash: `kill -9` of the daemon mid-stream, then a restart with the same data dir and client id.
The broker holds the unacknowledged and queued messages for the persistent session, the spool
survives on disk, and idempotent writes make redelivery harmless: every message in the manifest
is stored exactly once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.faultkit import (
    Background,
    Pipeline,
    dead_letters,
    expected_documents,
    expected_letters,
    expected_readings,
    metric,
    stored_documents,
)
from tests.servers import Influxd, Mosquitto, wait_for

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres, pytest.mark.influxd]


def crash_and_recover(pipe: Pipeline, kills: int, devices: int, rate: float, count: int) -> None:
    daemon = pipe.daemon().start()
    config = pipe.fleet(devices=devices, rate=rate, count=count, seed=4, malformed=0.03, duplicates=0.05)
    fleet = Background(lambda: pipe.publish(config))
    fleet.start()
    for k in range(kills):
        running = daemon  # each daemon counts from zero
        wait_for(
            lambda: metric(running.metrics(), "iot_items_written_total", dest="timeseries") > 50,  # noqa: B023
            60,
            "part of the stream to be stored",
        )
        daemon.kill()
        assert fleet.is_alive(), f"kill {k + 1} came after the fleet had finished: not mid-stream"
        daemon = pipe.daemon().start()
    try:
        manifest = fleet.result()
        expected, letters = expected_readings(manifest), expected_letters(config, manifest)
        pipe.wait_stored(expected, letters, 120, daemon)
    finally:
        rc = daemon.terminate()
    assert rc == 0, daemon.output()[-3000:]
    assert "session present: True" in daemon.output()

    assert pipe.readings() == expected  # nothing extra after the final flush either
    store = dead_letters(pipe.registry_url)
    try:
        assert store.count() == letters  # redelivered dead letters are not stored twice
        stored = store.list(limit=100_000)
    finally:
        store.engine.dispose()
    for m in manifest.malformed:
        if m["id_in_payload"]:
            found = re.compile(re.escape(m["id"].encode()) + rb"(?!\d)")  # mf-..-1 is not mf-..-10
            assert sum(bool(found.search(letter.payload)) for letter in stored) == 1, m
    assert stored_documents(pipe.data_dir, list(manifest.devices)) == expected_documents(manifest)


def test_kill_9_mid_stream_loses_nothing(
    tmp_path: Path, mosquitto_server: Mosquitto, influxdb1_url: str, postgres_url: str
) -> None:
    pipe = Pipeline("crash", tmp_path, mosquitto_server.url, influxdb1_url, postgres_url)
    crash_and_recover(pipe, kills=1, devices=4, rate=60, count=600)


@pytest.mark.soak
def test_repeated_kill_9_soak(
    tmp_path: Path, mosquitto_server: Mosquitto, influxdb1_url: str, postgres_url: str
) -> None:
    pipe = Pipeline("crashsoak", tmp_path, mosquitto_server.url, influxdb1_url, postgres_url)
    crash_and_recover(pipe, kills=5, devices=20, rate=20, count=2400)


def test_kill_9_while_spooling_replays_the_spool_from_disk(
    tmp_path: Path, mosquitto_server: Mosquitto, influxd: Influxd, postgres_url: str
) -> None:
    """Acknowledged to the broker, held only in the spool: a crash must not lose it."""
    pipe = Pipeline("crashspool", tmp_path, mosquitto_server.url, influxd.create_database("spool"), postgres_url)
    daemon = pipe.daemon().start()
    influxd.stop()
    config = pipe.fleet(devices=3, rate=0, count=300, seed=6, malformed=0.03)
    manifest = pipe.publish(config)

    def all_spooled() -> bool:
        m = daemon.metrics()
        return (
            metric(m, "iot_spool_batches", dest="timeseries") > 0
            and metric(m, "iot_unacked_messages") == 0
            and metric(m, "iot_messages_acked_total") >= manifest.sent
        )

    wait_for(all_spooled, 60, "every message to be spooled and acknowledged")
    daemon.kill()  # the broker has nothing left for us: only the spool on disk holds the readings
    influxd.start()
    daemon = pipe.daemon().start()
    try:
        expected, letters = expected_readings(manifest), expected_letters(config, manifest)
        pipe.wait_stored(expected, letters, 60, daemon)
        m = daemon.metrics()
    finally:
        assert daemon.terminate() == 0
    assert metric(m, "iot_replayed_batches_total", dest="timeseries") > 0
    assert metric(m, "iot_messages_received_total", kind="sensor_readings") == 0  # nothing was redelivered
    assert pipe.readings() == expected
