"""`iot ingest run --workers N`: workers share one subscription, a killed worker is restarted, nothing is lost."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from core.config import Settings
from ingest.broker import BrokerAddress
from ingest.metrics import parse_prometheus
from iot import alert_role
from iot.workers import WorkersRefused, check, worker_env
from tests.daemon_proc import DaemonProcess
from tests.faultkit import Pipeline, assert_stored_exactly, expected_letters, expected_readings, metric
from tests.servers import Mosquitto, wait_for


def settings(**kw: Any) -> Settings:
    return Settings(**kw)


def worker_metrics(daemon: DaemonProcess, k: int) -> dict[str, float]:
    """Worker ``k`` serves metrics on the daemon's port + k."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{daemon.port + k}/metrics", timeout=2) as r:
            return parse_prometheus(r.read().decode())
    except OSError:
        return {}


def test_embedded_broker_is_refused_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "IOT_DATA_DIR": str(tmp_path), "IOT_BROKER_URL": "embedded"}
    done = subprocess.run(
        [sys.executable, "-m", "iot", "ingest", "run", "--workers", "2"], env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 2
    err = done.stderr.decode().strip()
    assert len(err.splitlines()) == 1 and "shared subscriptions" in err, err


def test_paho_is_refused() -> None:
    with pytest.raises(WorkersRefused, match="native"):
        check(settings(broker_url="mqtt://h:1", mqtt_client="paho"), 2)
    check(settings(broker_url="mqtt://h:1"), 1)  # one worker: anything goes


def test_worker_env_gives_each_worker_its_identity(tmp_path: Path) -> None:
    s = settings(broker_url="mqtt://h:1", client_id="ing", data_dir=tmp_path, metrics_port=9000, workers=3)
    env = worker_env(s, 2)
    assert env["IOT_CLIENT_ID"] == "ing-2" and env["IOT_SHARE_GROUP"] == "ing"
    assert env["IOT_SPOOL_DIR"] == str(tmp_path / "spool" / "worker-2")
    assert env["IOT_METRICS_PORT"] == "9002" and env["IOT_WORKERS"] == "1"
    assert env["IOT_ROLE"] == "ingest"  # workers store; alerts are the evaluator's
    mine = {k: v for k, v in env.items() if k.startswith("IOT_")}
    assert mine["IOT_DATA_DIR"] == str(tmp_path) and mine["IOT_BROKER_URL"] == "mqtt://h:1"


def test_evaluator_env_gives_it_its_own_unshared_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(
        broker_url="mqtt://h:1",
        client_id="ing",
        data_dir=tmp_path,
        metrics_port=9000,
        topic_root="r",
        notify_secrets={"hook": "s3cret"},
        notify_allowed_networks=["10.0.0.0/8", "fd00::/8"],
    )
    env = alert_role.evaluator_env(s, worker_env(s, 0), 3)
    assert env["IOT_ROLE"] == "alerts" and env["IOT_CLIENT_ID"] == "ing-alerts" and env["IOT_SHARE_GROUP"] == ""
    assert env["IOT_SPOOL_DIR"] == str(tmp_path / "spool" / "alerts") and env["IOT_METRICS_PORT"] == "9003"
    monkeypatch.chdir(tmp_path)  # no .env
    for key, value in env.items():  # the process reads its settings back from this environment
        if key.startswith("IOT_"):
            monkeypatch.setenv(key, value)
    evaluator = settings()
    assert evaluator.role == "alerts" and evaluator.notify_secrets["hook"].get_secret_value() == "s3cret"
    assert [str(n) for n in evaluator.notify_allowed_networks] == ["10.0.0.0/8", "fd00::/8"]
    opts = alert_role.evaluator_options(BrokerAddress("h", 1), evaluator, evaluator.client_id)
    assert opts.client_id == "ing-alerts" and not opts.clean_start
    assert [f for f, _ in opts.subscriptions] == ["r/+/telemetry", "r/+/metrics", "r/+/events", "r/+/status"]


@pytest.mark.mosquitto
@pytest.mark.postgres
@pytest.mark.influxd
def test_two_workers_share_the_stream_and_survive_a_kill(
    tmp_path: Path, mosquitto: Mosquitto, influxdb1_url: str, postgres_url: str
) -> None:
    pipe = Pipeline("workers", tmp_path, mosquitto.url, influxdb1_url, postgres_url)
    daemon = pipe.daemon(IOT_WORKERS="2").start()
    try:
        worker1 = f"{pipe.daemon().env['IOT_CLIENT_ID']}-1"
        wait_for(lambda: worker_metrics(daemon, 1).get("iot_broker_subscribed") == 1.0, 30, "worker 1 to subscribe")
        pid = int(re.findall(r"worker 1 started \(pid (\d+)", daemon.output())[0])
        os.kill(pid, signal.SIGKILL)  # a worker dies; the supervisor starts it again under the same client id
        wait_for(lambda: daemon.output().count(f"client id {worker1})") >= 2, 30, "worker 1 to be restarted")
        wait_for(lambda: worker_metrics(daemon, 1).get("iot_broker_subscribed") == 1.0, 30, "worker 1 to resubscribe")
        config = pipe.fleet(devices=6, rate=0, count=400, seed=11, malformed=0.02, duplicates=0.02)
        manifest = pipe.publish(config)
        expected, letters = expected_readings(manifest), expected_letters(config, manifest)
        pipe.wait_stored(expected, letters, 120, daemon)
        acked0 = metric(daemon.metrics(), "iot_messages_acked_total")
        acked1 = metric(worker_metrics(daemon, 1), "iot_messages_acked_total")
    finally:
        rc = daemon.terminate()
    assert rc == 0, daemon.output()[-3000:]
    assert acked0 > 0 and acked1 > 0, "both workers took a share of the stream"
    assert_stored_exactly(pipe, manifest, expected, letters)
