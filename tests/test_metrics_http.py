"""/healthz and /metrics of a running daemon, and `iot status` reading them for a person: healthy,
degraded (a store down: 503, exit 1) and no daemon at all (one line, exit 1)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.daemon_proc import DaemonProcess
from tests.exposition import flat, parse
from tests.faultkit import Pipeline, expected_letters, expected_readings, metric, publish_raw
from tests.servers import Mosquitto, free_port, wait_for

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres, pytest.mark.influxd]


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


def parse_exposition(text: str) -> dict[str, float]:
    """Strict Prometheus text format 0.0.4 (tests/exposition.py): every sample by its key."""
    return flat(parse(text))


def table_rows(text: str) -> dict[str, list[str]]:
    """Rows of the rich tables in ``text``, by first cell."""
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in re.split("[│┃]", line)[1:-1]]
        if cells and cells[0]:
            rows[cells[0]] = cells
    return rows


def iot(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iot", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def status(daemon: DaemonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return iot("status", "--url", f"http://127.0.0.1:{daemon.port}", *args)


def test_healthy_daemon(tmp_path: Path, mosquitto_server: Mosquitto, influxdb1_url: str, postgres_url: str) -> None:
    pipe = Pipeline("health", tmp_path, mosquitto_server.url, influxdb1_url, postgres_url)
    daemon = pipe.daemon().start()
    try:
        first = parse(get(f"http://127.0.0.1:{daemon.port}/metrics")[2])  # before any message
        for dest in ("timeseries", "documents", "registry", "deadletters"):
            assert first["iot_items_written_total"].samples[f'iot_items_written_total{{dest="{dest}"}}'] == 0
            assert first["iot_store_write_seconds"].samples[f'iot_store_write_seconds_count{{dest="{dest}"}}'] == 0
        assert first["iot_messages_received_total"].samples['iot_messages_received_total{kind="event_logs"}'] == 0
        assert (
            first["iot_messages_dead_lettered_total"].samples['iot_messages_dead_lettered_total{reason="invalid_json"}']
            == 0
        )
        assert first["iot_notifications_sent_total"].samples['iot_notifications_sent_total{channel="webhook"}'] == 0
        assert first["process_open_fds"].samples["process_open_fds"] > 0
        config = pipe.fleet(devices=2, rate=0, count=100, seed=21, malformed=0.05, duplicates=0.05)
        manifest = pipe.publish(config)
        pipe.wait_stored(expected_readings(manifest), expected_letters(config, manifest), 60, daemon)
        wait_for(lambda: metric(daemon.metrics(), "iot_unacked_messages") == 0, 30, "every message acknowledged")

        code, ctype, body = get(f"http://127.0.0.1:{daemon.port}/healthz")
        assert (code, ctype) == (200, "application/json")
        health = json.loads(body)
        assert health["status"] == "ok" and health["broker"] == "subscribed" and health["unacked"] == 0
        assert set(health["stores"]) == {"timeseries", "documents", "registry", "deadletters"}
        assert all(s["up"] and s["spooled_batches"] == 0 and s["held_batches"] == 0 for s in health["stores"].values())

        code, ctype, body = get(f"http://127.0.0.1:{daemon.port}/metrics")
        assert code == 200 and ctype.startswith("text/plain; version=0.0.4")
        m = parse_exposition(body)
        sent_telemetry = manifest.totals.messages["telemetry"] + manifest.duplicates_by_kind.get("telemetry", 0)
        assert m['iot_messages_received_total{kind="sensor_readings"}'] == sent_telemetry
        assert sum(v for k, v in m.items() if k.startswith("iot_messages_dead_lettered_total")) == len(
            manifest.malformed
        )
        assert m["iot_broker_subscribed"] == 1 and m["iot_unacked_messages"] == 0
        assert m['iot_store_up{dest="timeseries"}'] == 1
        batches = m['iot_batches_written_total{dest="timeseries"}']
        assert batches > 0 and m['iot_store_write_seconds_count{dest="timeseries"}'] == batches
        assert m['iot_publish_to_store_seconds_count{dest="timeseries"}'] == batches
        assert m['iot_publish_to_store_seconds_bucket{dest="timeseries",le="+Inf"}'] == batches
        assert 0 < m['iot_publish_to_store_seconds_sum{dest="timeseries"}'] < 60 * batches
        assert get(f"http://127.0.0.1:{daemon.port}/nope")[0] == 404

        table = status(daemon)
        assert table.returncode == 0, table.stderr
        assert table.stdout.split()[:4] == ["status:", "ok", "broker:", "subscribed"]
        rows = table_rows(table.stdout)
        assert {"timeseries", "documents", "registry", "deadletters"} <= set(rows)
        assert rows["timeseries"][1] == "yes"
        assert int(rows["sensor_readings"][1]) == sent_telemetry

        as_json = status(daemon, "--json")
        assert as_json.returncode == 0, as_json.stderr
        doc: dict[str, Any] = json.loads(as_json.stdout)
        assert doc["health"]["status"] == "ok"
        assert doc["metrics"]['iot_messages_received_total{kind="sensor_readings"}'] == sent_telemetry

        by_env = iot("status", "--json", env={"IOT_METRICS_PORT": str(daemon.port)})  # URL from settings
        assert by_env.returncode == 0 and json.loads(by_env.stdout)["health"]["status"] == "ok"
    finally:
        assert daemon.terminate() == 0


def test_degraded_daemon_answers_503_and_status_exits_1(
    tmp_path: Path, mosquitto_server: Mosquitto, postgres_url: str
) -> None:
    nowhere = f"influxdb1://127.0.0.1:{free_port()}/gone"  # nothing listens: every write fails
    pipe = Pipeline("degraded", tmp_path, mosquitto_server.url, nowhere, postgres_url)
    daemon = pipe.daemon().start()
    try:
        publish_raw(pipe.broker_url, [(f"{pipe.topic_root}/{pipe.prefix}1/telemetry", b'{"t": 21.5}')])

        def spooled_and_degraded() -> bool:  # the write fails first, the batch is spooled just after
            code, _, text = get(f"http://127.0.0.1:{daemon.port}/healthz")
            return code == 503 and json.loads(text)["stores"]["timeseries"]["spooled_batches"] >= 1

        wait_for(spooled_and_degraded, 30, "/healthz to report 503 with the batch spooled")
        _, ctype, body = get(f"http://127.0.0.1:{daemon.port}/healthz")
        health = json.loads(body)
        assert ctype == "application/json" and health["status"] == "degraded"
        assert health["stores"]["timeseries"]["up"] is False
        assert health["stores"]["timeseries"]["spooled_batches"] == 1  # consumed, safe on disk
        assert health["stores"]["documents"]["up"] is True

        m = parse_exposition(get(f"http://127.0.0.1:{daemon.port}/metrics")[2])
        assert m['iot_store_up{dest="timeseries"}'] == 0 and m['iot_spool_batches{dest="timeseries"}'] == 1

        table = status(daemon)
        assert table.returncode == 1
        assert table.stdout.startswith("status: degraded")
        assert table_rows(table.stdout)["timeseries"][1] == "NO"
        assert "Traceback" not in table.stderr

        as_json = status(daemon, "--json")
        assert as_json.returncode == 1
        assert json.loads(as_json.stdout)["health"]["stores"]["timeseries"]["up"] is False
    finally:
        assert daemon.terminate() == 0


def test_status_without_a_daemon_is_one_line() -> None:
    done = iot("status", "--url", f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no daemon answering at"), done.stderr


def test_a_wrong_broker_password_is_named_in_healthz_and_logged_once(tmp_path: Path) -> None:
    """CONNACK "not authorised" (Mosquitto 2.0's answer to a wrong password) is operator action
    needed: /healthz names it (503), the log has one ERROR for the episode (not a WARNING per retry),
    and the daemon keeps retrying."""
    pwfile = tmp_path / "passwd"
    pwfile.write_text("iot:right\n")
    subprocess.run(["mosquitto_passwd", "-U", str(pwfile)], check=True)
    broker = Mosquitto(tmp_path / "m", extra_conf=f"allow_anonymous false\npassword_file {pwfile}\n").start()
    try:
        wrong = broker.url.replace("mqtt://", "mqtt://iot:wrong@")
        pipe = Pipeline("badpw", tmp_path, wrong, "embedded", f"sqlite:///{tmp_path / 'reg.sqlite3'}")
        daemon = pipe.daemon(IOT_LOG_LEVEL="DEBUG").start(subscribed=False)
        try:

            def reasons() -> list[str]:
                code, _, body = get(f"http://127.0.0.1:{daemon.port}/healthz")
                return list(json.loads(body)["reasons"]) if code == 503 else []

            wait_for(lambda: any("not authorised" in r for r in reasons()), 30, "/healthz to name it")
            [reason] = [r for r in reasons() if "not authorised" in r]
            assert reason.startswith("broker: ") and "refused client id 'ingest-badpw' (user 'iot')" in reason
            assert "wrong" not in reason
            wait_for(lambda: daemon.log.read_text().count("not authorised; check the broker user") >= 3, 30, "retries")
            log = daemon.log.read_text()
            errors = [line for line in log.splitlines() if "ERROR" in line and "not authorised" in line]
            assert len(errors) == 1, log[-2000:]
            assert "operator action needed" in errors[0] and "wrong" not in log
        finally:
            assert daemon.terminate() == 0
    finally:
        broker.stop()
