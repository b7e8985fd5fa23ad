"""`iot ingest run --workers N`: workers share one subscription, a killed worker is restarted, nothing is lost."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.broker_accounts import account_name, account_password, suffixes
from core.config import Settings
from ingest.metrics import parse_prometheus
from ingest.mqtt.broker import BrokerAddress
from iot import alert_role
from iot.cli.toolkit import settings as cli_settings
from iot.service import broker_address
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
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "iot_notify_secrets").write_text('{"hook": "s3cret"}')
    monkeypatch.setenv("IOT_SECRETS_DIR", str(secrets))
    monkeypatch.chdir(tmp_path)  # no .env
    s = cli_settings(
        broker_url="mqtt://h:1",
        client_id="ing",
        data_dir=tmp_path,
        metrics_port=9000,
        topic_root="r",
        notify_allowed_networks=["10.0.0.0/8", "fd00::/8"],
    )
    env = alert_role.evaluator_env(s, worker_env(s, 0), 3)
    assert "s3cret" not in repr(env) and env["IOT_SECRETS_DIR"] == str(secrets)
    assert env["IOT_ROLE"] == "alerts" and env["IOT_CLIENT_ID"] == "ing-alerts" and env["IOT_SHARE_GROUP"] == ""
    assert env["IOT_SPOOL_DIR"] == str(tmp_path / "spool" / "alerts") and env["IOT_METRICS_PORT"] == "9003"
    for key, value in env.items():  # the process reads its settings back from this environment
        if key.startswith("IOT_"):
            monkeypatch.setenv(key, value)
    evaluator = cli_settings()  # as `iot ingest run` reads them: the secret from its file
    assert evaluator.role == "alerts" and evaluator.notify_secrets["hook"].get_secret_value() == "s3cret"
    assert [str(n) for n in evaluator.notify_allowed_networks] == ["10.0.0.0/8", "fd00::/8"]
    opts = alert_role.evaluator_options(BrokerAddress("h", 1), evaluator, evaluator.client_id)
    assert opts.client_id == "ing-alerts" and not opts.clean_start
    assert [f for f, _ in opts.subscriptions] == ["r/+/telemetry", "r/+/metrics", "r/+/events", "r/+/status"]


@pytest.mark.parametrize("mode", ["own", "shared"])
def test_each_process_connects_as_an_account_the_export_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """Default (own): worker k as ``{user}-k``, the evaluator as ``{user}-alerts``, exactly the accounts
    ``export-mosquitto --workers 3`` writes, with derived passwords (never the ingest one); shared:
    every process on IOT_BROKER_URL's account. Read back from each process's environment."""
    monkeypatch.chdir(tmp_path)  # no .env
    (tmp_path / "iot_broker_password").write_text("ingest-pw")
    monkeypatch.setenv("IOT_SECRETS_DIR", str(tmp_path))
    s = cli_settings(broker_url="mqtt://iot-ingest@h:1", data_dir=tmp_path, workers=3, broker_accounts=mode)
    envs = [worker_env(s, k) for k in range(3)] + [alert_role.evaluator_env(s, worker_env(s, 0), 3)]
    addrs = []
    for env in envs:
        assert "ingest-pw" not in repr(env)
        with monkeypatch.context() as m:
            for key, value in env.items():
                if key.startswith("IOT_"):
                    m.setenv(key, value)
            addrs.append(broker_address(cli_settings()))
    if mode == "shared":
        assert {(a.username, a.password) for a in addrs} == {("iot-ingest", "ingest-pw")}
        return
    users = [a.username for a in addrs]
    assert users == [account_name("iot-ingest", x) for x in suffixes(3)]  # what the export writes
    assert users == ["iot-ingest-0", "iot-ingest-1", "iot-ingest-2", "iot-ingest-alerts"]
    assert [a.password for a in addrs] == [account_password("ingest-pw", str(u)) for u in users]
    assert len({a.password for a in addrs} | {"ingest-pw"}) == 5  # each its own, none the ingest one
    assert all("ingest-pw" not in repr(a) and str(a.password) not in repr(a) for a in addrs)


def test_worker_env_copies_no_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Secrets reach a worker as the supervisor got them: a file stays a file (the directory's path
    is passed), a variable the operator set stays that variable; no value is added."""
    (tmp_path / "iot_influxdb_token").write_text("from-a-file")
    monkeypatch.setenv("IOT_SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("IOT_API_KEY", "from-the-env")
    monkeypatch.chdir(tmp_path)  # no .env
    s = cli_settings(broker_url="mqtt://h:1")
    assert s.influxdb_token is not None and s.influxdb_token.get_secret_value() == "from-a-file"
    env = worker_env(s, 0)
    assert "from-a-file" not in repr(env) and "IOT_INFLUXDB_TOKEN" not in env
    assert env["IOT_SECRETS_DIR"] == str(tmp_path) and env["IOT_API_KEY"] == "from-the-env"
    assert "IOT_NOTIFY_SECRETS" not in env and "IOT_BROKER_PASSWORD" not in env


def starts(daemon: DaemonProcess, what: str) -> list[int]:
    """The pids the supervisor started for ``what`` (``worker 0``, ``alert evaluator``), in order."""
    return [int(p) for p in re.findall(rf"{what} started \(pid (\d+)", daemon.output())]


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def restarted(daemon: DaemonProcess, what: str, times: int) -> Callable[[], bool]:
    """A condition: ``what`` has been started more than ``times`` times."""
    return lambda: len(starts(daemon, what)) > times


def killed(daemon: DaemonProcess, what: str) -> int:
    """SIGKILL the running ``what``; returns how many times it had been started."""
    pids = starts(daemon, what)
    os.kill(pids[-1], signal.SIGKILL)
    return len(pids)


@pytest.mark.mosquitto
def test_one_process_backing_off_holds_up_no_other(tmp_path: Path, mosquitto_server: Mosquitto) -> None:
    """Worker 0 dies again and again (its next restart is 8 s away); worker 1 and the evaluator,
    killed meanwhile, are back on their own 1 s schedule."""
    daemon = DaemonProcess.on_root(tmp_path, mosquitto_server.url, "backoff", IOT_WORKERS="2").start()
    try:
        for n in range(4):  # restarts after 1, 2, 4 s; the fourth exit waits 8 s
            started = killed(daemon, "worker 0")
            if n < 3:
                wait_for(restarted(daemon, "worker 0", started), 30, "worker 0 to be restarted")
        wait_for(lambda: "worker 0 exited with -9; restarting in 8.0 s" in daemon.output(), 10, "worker 0's exit")
        before = {what: killed(daemon, what) for what in ("worker 1", "alert evaluator")}
        for what, count in before.items():  # well before worker 0's 8 s are up
            wait_for(restarted(daemon, what, count), 5, f"{what} to be restarted")
            assert running(starts(daemon, what)[-1]), what
        assert len(starts(daemon, "worker 0")) == 4, "worker 0 is still waiting out its backoff"
        wait_for(lambda: len(starts(daemon, "worker 0")) == 5, 30, "worker 0 to be restarted")
        wait_for(lambda: worker_metrics(daemon, 0).get("iot_broker_subscribed") == 1.0, 30, "worker 0 to subscribe")
    finally:
        rc = daemon.terminate()
    assert rc == 0, daemon.output()[-3000:]


@pytest.mark.mosquitto
def test_workers_read_secrets_from_files_not_their_environment(tmp_path: Path) -> None:
    """The broker needs a password, kept in IOT_SECRETS_DIR: every process subscribes with its own
    account's password derived from it, and none has either (or any other secret) in its environment."""
    password = "br0ker-s3cret-9f2c"
    pwfile = tmp_path / "passwd"
    accounts = ["ingest-0", "ingest-1", "ingest-alerts"]  # each process's own (IOT_BROKER_ACCOUNTS=own)
    derived = [account_password(password, a) for a in accounts]
    pwfile.write_text(f"ingest:{password}\n" + "".join(f"{a}:{p}\n" for a, p in zip(accounts, derived, strict=True)))
    subprocess.run(["mosquitto_passwd", "-U", str(pwfile)], check=True)
    broker = Mosquitto(tmp_path / "m", extra_conf=f"allow_anonymous false\npassword_file {pwfile}\n").start()
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    values = {
        "iot_broker_password": password,
        "iot_api_key": "api-s3cret-71ab",
        "iot_notify_secrets": '{"hook": "hook-s3cret-5d0e"}',
    }
    for name, value in values.items():
        (secrets / name).write_text(value)
    url = f"mqtt://ingest@127.0.0.1:{broker.port}"
    daemon = DaemonProcess.on_root(tmp_path / "d", url, "secrets", IOT_WORKERS="2", IOT_SECRETS_DIR=str(secrets))
    try:
        daemon.start()
        wait_for(lambda: worker_metrics(daemon, 1).get("iot_broker_subscribed") == 1.0, 30, "worker 1 to subscribe")
        wait_for(lambda: worker_metrics(daemon, 2).get("iot_broker_subscribed") == 1.0, 30, "the evaluator")
        pids = [starts(daemon, what)[-1] for what in ("worker 0", "worker 1", "alert evaluator")]
        for pid in pids:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            for secret in (password, "api-s3cret-71ab", "hook-s3cret-5d0e", *derived):
                assert not any(secret.encode() in var for var in environ), (pid, secret)
            assert f"IOT_SECRETS_DIR={secrets}".encode() in environ
    finally:
        rc = daemon.terminate()
        broker.stop()
    assert rc == 0, daemon.output()[-3000:]


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


@pytest.mark.mosquitto
def test_workers_stop_when_the_supervisor_is_killed(tmp_path: Path, mosquitto_server: Mosquitto) -> None:
    """kill -9 of the supervisor leaves no worker or evaluator behind (a restarted supervisor would
    otherwise run a second set beside them, on the same client ids and spools): each notices its
    parent is gone and stops as on SIGTERM."""
    daemon = DaemonProcess.on_root(tmp_path, mosquitto_server.url, "orphans", IOT_WORKERS="2").start()
    try:
        for k in range(2):

            def subscribed(k: int = k) -> bool:
                return worker_metrics(daemon, k).get("iot_broker_subscribed") == 1.0

            wait_for(subscribed, 30, f"worker {k} to subscribe")
        children = [starts(daemon, what)[-1] for what in ("worker 0", "worker 1", "alert evaluator")]
        assert all(running(pid) for pid in children)
    finally:
        daemon.kill()  # SIGKILL: the supervisor cannot stop its children
    wait_for(lambda: not any(running(pid) for pid in children), 30, "the workers and the evaluator to stop")
    assert daemon.output().count("the supervisor (pid") == 3, daemon.output()[-3000:]
