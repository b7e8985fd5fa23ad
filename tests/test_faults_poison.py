"""Poison and floods: a stream of malformed messages (oversize ones included) interleaved with good
traffic never stalls the good traffic and never grows the daemon's memory without bound: every good
reading stored, every bad message dead-lettered."""

from __future__ import annotations

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
    rss_kib,
    stored_documents,
)
from tests.servers import Mosquitto, wait_for

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres, pytest.mark.influxd]


def flood(pipe: Pipeline, poison_devices: int, poison_count: int, rss_limit_mib: int) -> None:
    daemon = pipe.daemon().start()
    assert daemon.proc is not None
    pid = daemon.proc.pid
    peak = [rss_kib(pid)]
    # every message after each device's first is malformed; ~1 in 11 is a 257 KiB oversize one
    poison_cfg = pipe.fleet(
        devices=poison_devices, rate=50, count=poison_count, seed=13, malformed=1.0, id_prefix=f"{pipe.prefix}bad-"
    )
    poison = Background(lambda: pipe.publish(poison_cfg))
    poison.start()
    good_cfg = pipe.fleet(devices=3, rate=100, count=300, seed=14, id_prefix=f"{pipe.prefix}good-")
    try:
        wait_for(
            lambda: metric(daemon.metrics(), "iot_items_written_total", dest="deadletters") > 50,
            30,
            "the flood to reach the daemon",
        )
        good = pipe.publish(good_cfg)  # meanwhile, the flood goes on
        expected = expected_readings(good)

        def good_stored() -> bool:
            peak[0] = max(peak[0], rss_kib(pid))
            return pipe.readings() == expected

        wait_for(good_stored, 60, "the good readings to be stored during the flood", interval=0.2)
        assert poison.is_alive(), "the flood ended before the good traffic was stored: not a flood test"
        bad = poison.result()
        expected = expected_readings(good, bad)  # each poison device's first message is a good status
        letters = expected_letters(poison_cfg, bad)
        assert letters > 1000

        def all_stored() -> bool:
            peak[0] = max(peak[0], rss_kib(pid))
            return pipe.readings() == expected

        wait_for(all_stored, 60, "the flood to be processed")
        pipe.wait_stored(expected, letters, 120, daemon)
        peak[0] = max(peak[0], rss_kib(pid))
    finally:
        rc = daemon.terminate()
    assert rc == 0, daemon.output()[-3000:]
    assert peak[0] < rss_limit_mib * 1024, f"daemon RSS peaked at {peak[0] // 1024} MiB"
    store = dead_letters(pipe.registry_url)
    try:
        assert store.count() == letters
    finally:
        store.engine.dispose()
    assert pipe.readings() == expected
    devices = [*good.devices, *bad.devices]
    assert stored_documents(pipe.data_dir, devices) == expected_documents(good, bad)


def test_poison_flood_never_stalls_good_traffic(
    tmp_path: Path, mosquitto_server: Mosquitto, influxdb1_url: str, postgres_url: str
) -> None:
    pipe = Pipeline("poison", tmp_path, mosquitto_server.url, influxdb1_url, postgres_url)
    flood(pipe, poison_devices=5, poison_count=400, rss_limit_mib=400)


@pytest.mark.soak
def test_poison_flood_soak(tmp_path: Path, mosquitto_server: Mosquitto, influxdb1_url: str, postgres_url: str) -> None:
    pipe = Pipeline("poisonsoak", tmp_path, mosquitto_server.url, influxdb1_url, postgres_url)
    flood(pipe, poison_devices=10, poison_count=1000, rss_limit_mib=400)
