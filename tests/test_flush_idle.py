"""The end of a burst lands once the receiver goes quiet (``IOT_FLUSH_IDLE``), not a whole
``IOT_FLUSH_INTERVAL`` later: real Mosquitto, influxd 1.x, the daemon as ``iot ingest run``.

The flush interval here is an hour, so only the idle flush can write a part-filled batch within
the test's deadline; with ``IOT_FLUSH_IDLE=0`` the same readings, routed (counted as received),
stay buffered until shutdown writes them."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.daemon_proc import DaemonProcess
from tests.faultkit import metric_sum
from tests.servers import Mosquitto, wait_for
from tests.test_retained import publish, stored

pytestmark = [pytest.mark.mosquitto, pytest.mark.influxd]


def run(tmp: Path, broker: Mosquitto, url: str, idle: str) -> tuple[DaemonProcess, str, str]:
    root = "fi" + uuid.uuid4().hex[:8]
    proc = DaemonProcess.on_root(
        tmp / "daemon", broker.url, root, timeseries=url, IOT_FLUSH_INTERVAL="3600", IOT_FLUSH_IDLE=idle
    )
    proc.start()
    return proc, root, f"{root}-dev"


def test_a_part_filled_batch_lands_once_the_receiver_is_quiet(
    tmp_path: Path, mosquitto: Mosquitto, influxdb1_url: str
) -> None:
    proc, root, device = run(tmp_path, mosquitto, influxdb1_url, "0.1")
    try:
        for i in range(5):
            publish(mosquitto, f"{root}/{device}/telemetry", {"temperature": 20.0 + i}, retain=False)
        wait_for(lambda: stored(influxdb1_url, device) == 5, 20, "the idle flush")
    finally:
        assert proc.terminate() == 0


def test_without_the_idle_flush_a_part_filled_batch_waits_for_the_interval(
    tmp_path: Path, mosquitto: Mosquitto, influxdb1_url: str
) -> None:
    proc, root, device = run(tmp_path, mosquitto, influxdb1_url, "0")
    try:
        for i in range(5):
            publish(mosquitto, f"{root}/{device}/telemetry", {"temperature": 20.0 + i}, retain=False)
        wait_for(lambda: metric_sum(proc.metrics(), "iot_messages_received_total") >= 5, 20, "routing")
        assert stored(influxdb1_url, device) == 0
    finally:
        assert proc.terminate() == 0  # shutdown writes what was buffered
    assert stored(influxdb1_url, device) == 5
