"""Store outage: influxd or PostgreSQL goes away mid-stream while the fleet keeps sending. The
daemon keeps consuming into its durable spool, the other destinations keep flowing, and when the
store returns the spool replays in order: exact counts at the end."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.config import Settings
from iot.service import build_resources
from registry.db import SchemaNotMigrated
from tests.daemon_proc import DaemonProcess
from tests.faultkit import (
    Background,
    Pipeline,
    assert_stored_exactly,
    expected_letters,
    expected_readings,
    metric,
)
from tests.servers import Influxd, Mosquitto, Postgres, wait_for

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres, pytest.mark.influxd]

Server = Influxd | Postgres


def written(daemon: DaemonProcess, dest: str) -> float:
    return metric(daemon.metrics(), "iot_items_written_total", dest=dest)


def outage(pipe: Pipeline, server: Server, seconds: float, down: list[str], flowing: list[str], rate: float) -> None:
    """Fleet at ``rate`` msg/s/device for ``seconds`` + ~15 s; ``server`` down for ``seconds`` after ~3 s."""
    daemon = pipe.daemon().start()
    config = pipe.fleet(devices=3, rate=rate, count=int(rate * (seconds + 15)), seed=5, malformed=0.06, duplicates=0.02)
    fleet = Background(lambda: pipe.publish(config))
    fleet.start()
    try:
        wait_for(
            lambda: written(daemon, "timeseries") > 20 and written(daemon, "registry") > 0,
            30,
            "the stream to be flowing",
        )
        server.stop()
        t0 = time.monotonic()
        before = {d: written(daemon, d) for d in flowing}
        for dest in down:  # consuming on, into the spool
            wait_for(
                lambda: metric(daemon.metrics(), "iot_spool_batches", dest=dest) > 0,  # noqa: B023
                seconds,
                f"the {dest} spool to fill",
            )
        for dest in flowing:
            wait_for(lambda: written(daemon, dest) > before[dest], seconds, f"{dest} to keep flowing")  # noqa: B023
        health = daemon.metrics()
        assert all(metric(health, "iot_store_up", dest=d) == 0 for d in down)
        # the outage itself: the store stays away for ``seconds`` while the daemon must stay alive
        wait_for(lambda: daemon._alive() and time.monotonic() - t0 >= seconds, seconds + 5, "the outage to end")
        assert fleet.is_alive(), "the fleet finished during the outage: it must go on sending after it"
        assert all(written(daemon, d) > before[d] for d in flowing)
        server.start()
        manifest = fleet.result()
        expected, letters = expected_readings(manifest), expected_letters(config, manifest)
        pipe.wait_stored(expected, letters, 120, daemon)
        wait_for(
            lambda: all(metric(daemon.metrics(), "iot_spool_batches", dest=d) == 0 for d in down),
            60,
            "the spool to drain",
        )
        m = daemon.metrics()
    finally:
        rc = daemon.terminate()
    assert rc == 0, daemon.output()[-3000:]
    for dest in down:
        assert metric(m, "iot_spooled_batches_total", dest=dest) > 0
        assert metric(m, "iot_replayed_batches_total", dest=dest) == metric(m, "iot_spooled_batches_total", dest=dest)
        assert metric(m, "iot_store_up", dest=dest) == 1

    assert_stored_exactly(pipe, manifest, expected, letters)


def test_influxd_down_30s(tmp_path: Path, mosquitto_server: Mosquitto, influxd: Influxd, postgres_url: str) -> None:
    url = influxd.create_database("outage")
    pipe = Pipeline("tsout", tmp_path, mosquitto_server.url, url, postgres_url)
    outage(pipe, influxd, 30, ["timeseries"], ["documents", "deadletters"], rate=10)


def test_postgres_down_10s(tmp_path: Path, mosquitto_server: Mosquitto, influxdb1_url: str, postgres: Postgres) -> None:
    url = postgres.create_database("outage")
    pipe = Pipeline("pgout", tmp_path, mosquitto_server.url, influxdb1_url, url)
    outage(pipe, postgres, 10, ["registry", "deadletters"], ["timeseries", "documents"], rate=10)


@pytest.mark.soak
def test_influxd_down_long_soak(
    tmp_path: Path, mosquitto_server: Mosquitto, influxd: Influxd, postgres_url: str
) -> None:
    url = influxd.create_database("outage")
    pipe = Pipeline("tsoutsoak", tmp_path, mosquitto_server.url, url, postgres_url)
    outage(pipe, influxd, 180, ["timeseries"], ["documents", "deadletters"], rate=20)


@pytest.mark.soak
def test_postgres_down_long_soak(
    tmp_path: Path, mosquitto_server: Mosquitto, influxdb1_url: str, postgres: Postgres
) -> None:
    url = postgres.create_database("outage")
    pipe = Pipeline("pgoutsoak", tmp_path, mosquitto_server.url, influxdb1_url, url)
    outage(pipe, postgres, 120, ["registry", "deadletters"], ["timeseries", "documents"], rate=20)


def test_postgres_down_at_start(
    tmp_path: Path, mosquitto_server: Mosquitto, influxdb1_url: str, postgres: Postgres
) -> None:
    """The daemon starts with PostgreSQL stopped (it used to exit 1) and rides it out as it does
    mid-stream: readings flow, registry writes and dead letters spool; once PostgreSQL starts, the
    spool drains and everything is stored exactly."""
    url = postgres.create_database("startdown")
    pipe = Pipeline("pgstart", tmp_path, mosquitto_server.url, influxdb1_url, url)  # migrated, then stopped
    postgres.stop()
    daemon = pipe.daemon().start()
    try:
        assert "registry unreachable at start" in daemon.output()
        config = pipe.fleet(devices=2, rate=0, count=40, seed=9, malformed=0.1)
        manifest = pipe.publish(config)
        wait_for(lambda: written(daemon, "timeseries") > 0, 30, "readings to flow without the registry")
        wait_for(lambda: metric(daemon.metrics(), "iot_spool_batches", dest="registry") > 0, 30, "the registry spool")
        postgres.start()
        expected, letters = expected_readings(manifest), expected_letters(config, manifest)
        pipe.wait_stored(expected, letters, 120, daemon)
        wait_for(
            lambda: all(
                metric(daemon.metrics(), "iot_spool_batches", dest=d) == 0 for d in ("registry", "deadletters")
            ),
            60,
            "the spool to drain",
        )
    finally:
        rc = daemon.terminate()
    assert rc == 0, daemon.output()[-3000:]
    assert_stored_exactly(pipe, manifest, expected, letters)


def test_an_unmigrated_registry_at_start_is_still_refused(tmp_path: Path, postgres: Postgres) -> None:
    settings = Settings(registry_url=postgres.create_database("fresh"), data_dir=tmp_path)
    with pytest.raises(SchemaNotMigrated, match="iot registry migrate"):
        build_resources(settings)
