"""No exception ends the ticker: a registry whose ``devices()`` raises a bug and an observer whose
``tick`` raises (both injected by wrappers; the point is the daemon's timer, not a store) leave the
ticker flushing batches, the daemon degraded with the reason, and healthy again once they work."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from core.config import Settings
from core.model import Point, StatusChange
from iot.service import build_daemon, build_resources
from registry.deadletters import DeadLetterStore
from registry.directory import DeviceInfo, RegistryStore
from tests.faultkit import publish_raw
from tests.servers import Mosquitto, wait_for

pytestmark = [pytest.mark.mosquitto]


class BuggyRegistry(RegistryStore):
    """The real registry store; ``devices()`` raises ``error`` while it is set."""

    error: Exception | None = None

    def devices(self) -> dict[str, DeviceInfo]:
        if self.error is not None:
            raise self.error
        return super().devices()


class BuggyObserver:
    def __init__(self) -> None:
        self.error: Exception | None = None
        self.ticks = 0

    def observe(self, points: Sequence[Point], now: float) -> None:
        pass

    def status(self, changes: Sequence[StatusChange], now: float) -> None:
        pass

    def tick(self, now: float) -> None:
        self.ticks += 1
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        pass


def test_ticker_survives_bugs_and_reports_them(
    tmp_path: Path, mosquitto_server: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    s = Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        broker_url=mosquitto_server.url,
        metrics_port=0,
        flush_interval=0.1,
        registry_refresh=0.1,
        offline_check_interval=0.1,
        topic_root="tickbug",
        client_id="tickbug-ingest",
    )
    res = build_resources(s)
    registry = BuggyRegistry(res.registry.engine)
    observer = BuggyObserver()
    res.registry, res.observers = registry, [observer]
    daemon = build_daemon(s, res, with_alerts=False)
    daemon.start()
    try:
        wait_for(daemon.connected.is_set, 30, "the daemon to subscribe")
        with caplog.at_level(logging.WARNING, logger="iot.ingest"):
            registry.error = RuntimeError("bug in devices()")
            observer.error = ZeroDivisionError("bug in tick")
            wait_for(lambda: len(daemon.step_problems) == 2, 30, "both ticker steps to fail")
            ticks = observer.ticks
            wait_for(lambda: observer.ticks >= ticks + 3, 30, "the ticker to keep ticking")
            ok, detail = daemon.health()
            assert not ok
            assert "RuntimeError: bug in devices()" in detail["steps"]["directory refresh"]
            assert "ZeroDivisionError: bug in tick" in detail["steps"]["BuggyObserver tick"]
            assert len(detail["reasons"]) == 2
            # the ticker still flushes partial batches: a message is stored
            payload = json.dumps({"t": 1.5, "ts": int(time.time() * 1000)}).encode()
            publish_raw(mosquitto_server.url, [("tickbug/dev-1/telemetry", payload)])
            wait_for(
                lambda: daemon.metrics.value("iot_items_written_total", dest="timeseries") == 1,
                30,
                "the reading to be written",
            )
            assert res.timeseries.count("sensor_readings", "dev-1") == 1
            assert daemon._ticker_thread.is_alive()
            assert daemon.metrics.value("iot_step_errors_total", step="directory refresh", error="RuntimeError") >= 3

            registry.error = observer.error = None
            wait_for(lambda: daemon.health()[0], 30, "the daemon to be healthy again")
        tracebacks = [r for r in caplog.records if r.exc_info is not None]
        assert sorted(type(r.exc_info[1]).__name__ for r in tracebacks if r.exc_info) == [
            "RuntimeError",
            "ZeroDivisionError",
        ]  # once each, not on every tick
        assert sum("works again" in r.getMessage() for r in caplog.records) == 2
    finally:
        daemon.shutdown(10)


@pytest.mark.parametrize("client", ["native", "paho"])
def test_a_routing_bug_dead_letters_the_message_and_keeps_the_receiver_alive(
    tmp_path: Path, mosquitto_server: Mosquitto, caplog: pytest.LogCaptureFixture, client: str
) -> None:
    """A bug past the decoder's own guard (injected by a decode function that raises) must not end
    the MQTT receive thread (native session or paho) or leave the message's acknowledgement stuck:
    it is dead-lettered."""
    from ingest.decoding.decode import Decoder

    s = Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        broker_url=mosquitto_server.url,
        metrics_port=0,
        flush_interval=0.1,
        topic_root="routebug",
        client_id=f"routebug-ingest-{client}",
        mqtt_client=client,
    )

    class BuggyDecoder(Decoder):
        def decode(self, topic: str, payload: bytes, now_ns: int) -> Any:
            if payload == b'{"boom": 1}':
                raise RuntimeError("bug in routing")
            return super().decode(topic, payload, now_ns)

    res = build_resources(s)
    daemon = build_daemon(s, res, with_alerts=False, decoder=BuggyDecoder(topic_root=s.topic_root))
    daemon.start()
    try:
        wait_for(daemon.connected.is_set, 30, "the daemon to subscribe")
        ms = int(time.time() * 1000)
        good = [("routebug/dev-1/telemetry", json.dumps({"t": float(i), "ts": ms + i}).encode()) for i in range(5)]
        with caplog.at_level(logging.WARNING, logger="iot.ingest"):
            publish_raw(mosquitto_server.url, [good[0], ("routebug/dev-1/telemetry", b'{"boom": 1}'), *good[1:]])
            wait_for(
                lambda: (
                    daemon.metrics.value("iot_items_written_total", dest="timeseries") == 5
                    and daemon.metrics.value("iot_items_written_total", dest="deadletters") == 1
                ),
                30,
                "5 readings and 1 dead letter written",
            )
            wait_for(lambda: daemon.acks.outstanding == 0, 30, "every message acknowledged")
        assert daemon.pipeline.receiver.thread_alive
        assert isinstance(res.deadletters, DeadLetterStore)
        letters = res.deadletters.list(limit=10)
        assert [(r.payload, r.reason, r.detail) for r in letters] == [
            (b'{"boom": 1}', "wrong_type", "internal error (RuntimeError)")
        ]
        assert daemon.metrics.value("iot_step_errors_total", step="message handling", error="RuntimeError") == 1
        assert [r.exc_info is not None for r in caplog.records if "message handling failed" in r.getMessage()] == [True]
        assert "message handling" not in daemon.step_problems  # the next message worked
    finally:
        daemon.shutdown(10)
