"""A device publishes 200 MB messages through a real Mosquitto that has no ``max_packet_size``: the
daemon (a real ``iot ingest run``) never holds one in memory. Its session reads each in bounded
chunks and discards it, and it is dead-lettered ``oversize`` (topic, size, SHA-256, a prefix) and
acknowledged; the connection to the broker stays up throughout."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest

from registry.db import make_engine, migrate
from registry.deadletters import DeadLetterStore
from tests.daemon_proc import DaemonProcess
from tests.faultkit import metric, publish_raw, rss_kib
from tests.servers import Mosquitto, wait_for

pytestmark = pytest.mark.mosquitto

MB = 1000 * 1000


def test_200_mb_publishes_leave_the_daemons_memory_flat(tmp_path: Path, mosquitto: Mosquitto) -> None:
    assert "max_packet_size" not in mosquitto.conf.read_text()  # the daemon's own limit is under test
    registry = f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    migrate(registry)
    root = "huge" + uuid.uuid4().hex[:6]
    daemon = DaemonProcess.on_root(tmp_path / "daemon", mosquitto.url, root, registry=registry).start()
    store = DeadLetterStore(make_engine(registry))
    try:
        assert daemon.proc is not None
        pid = daemon.proc.pid
        idle = rss_kib(pid)
        huge = [bytes([65 + i]) * (200 * MB) for i in range(2)]
        publish_raw(mosquitto.url, [(f"{root}/d{i}/telemetry", p) for i, p in enumerate(huge)])
        wait_for(lambda: store.count() == 2, 120, "two oversize dead letters")
        wait_for(lambda: daemon.metrics().get("iot_unacked_messages") == 0.0, 30, "both acknowledged")
        peak = rss_kib(pid, "VmHWM")
        values = daemon.metrics()
    finally:
        assert daemon.terminate() == 0
    assert peak <= 1.5 * idle, f"peak RSS {peak} KiB vs idle {idle} KiB"
    assert metric(values, "iot_broker_disconnects_total") == 0.0, daemon.output()[-2000:]
    assert metric(values, "iot_messages_dead_lettered_total", reason="oversize") == 2.0
    for row in store.list():
        i = int(row.device_id[1:])  # type: ignore[index]
        assert (row.reason, row.topic, row.original_size) == ("oversize", f"{root}/d{i}/telemetry", 200 * MB)
        assert row.payload_sha256 == hashlib.sha256(huge[i]).hexdigest()
        assert row.payload == huge[i][: len(row.payload)] and 0 < len(row.payload) <= 4096
    store.engine.dispose()
