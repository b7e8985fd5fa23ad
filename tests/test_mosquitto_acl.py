"""The exported password file and ACL, enforced by a real mosquitto: devices publish only under
their own id, the ingest account reads everything, wrong/disabled/retired credentials are refused."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy.orm import Session

from core.config import Settings
from core.model import DeadLetter
from ingest.mqtt.session import Options, ProblemKind
from ingest.mqtt.session import Session as MqttSession
from registry.auth import BOOTSTRAP_ACTOR
from registry.db import make_engine, migrate
from registry.deadletters import DeadLetterStore
from registry.devices import export_mosquitto, provision_fleet, set_status
from tests.cli_runner import run_iot
from tests.daemon_proc import DaemonProcess
from tests.servers import Mosquitto, wait_for
from tests.test_mqtt_session import Recorder
from tests.test_workers import worker_metrics

pytestmark = pytest.mark.mosquitto

NOT_AUTHORIZED = 135
BAD_CREDENTIALS = 134


@dataclass
class Conn:
    client: mqtt.Client
    connack: ReasonCode | None = None
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    acks: dict[int, ReasonCode] = field(default_factory=dict)
    disconnects: list[ReasonCode] = field(default_factory=list)
    connacks: list[bool] = field(default_factory=list)  # session present, per CONNACK

    def publish(self, topic: str, payload: bytes) -> ReasonCode:
        """Publish at QoS 1 and return the broker's PUBACK reason code."""
        info = self.client.publish(topic, payload, qos=1)
        wait_for(lambda: info.mid in self.acks, 10, f"PUBACK for {topic}")
        return self.acks[info.mid]


@pytest.fixture
def connect(mosquitto: Mosquitto) -> Iterator[Any]:
    clients: list[mqtt.Client] = []

    def _connect(user: str, password: str, client_id: str | None = None, persistent: bool = False) -> Conn:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"{user}-{uuid.uuid4().hex[:6]}",
            protocol=mqtt.MQTTv5,
        )
        conn = Conn(client)
        client.username_pw_set(user, password)

        def on_connect(_c: Any, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
            if conn.connack is None:
                conn.connack = rc
            conn.connacks.append(bool(_f.session_present))
            if rc.is_failure:  # refused: stop the loop from reconnecting
                _c.disconnect()

        def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
            conn.messages.append((msg.topic, bytes(msg.payload)))

        def on_publish(_c: Any, _u: Any, mid: int, rc: ReasonCode, _p: Any) -> None:
            conn.acks[mid] = rc

        def on_disconnect(_c: Any, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
            conn.disconnects.append(rc)

        client.on_connect, client.on_message, client.on_publish = on_connect, on_message, on_publish
        client.on_disconnect = on_disconnect
        clients.append(client)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        if persistent:
            props.SessionExpiryInterval = 3600
        client.connect("127.0.0.1", mosquitto.port, keepalive=30, clean_start=not persistent, properties=props)
        client.loop_start()
        wait_for(lambda: conn.connack is not None, 10, f"CONNACK for {user}")
        return conn

    yield _connect
    for c in clients:
        c.on_disconnect = None
        c.disconnect()
        c.loop_stop()


@pytest.fixture
def fleet(tmp_path: Path, mosquitto: Mosquitto) -> dict[str, str]:
    """Five provisioned devices (the 4th disabled, the 5th retired), exported to the broker."""
    engine = make_engine(f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    migrate(engine)
    with Session(engine) as s:
        secrets = provision_fleet(s, BOOTSTRAP_ACTOR, 5, ["thermostat"], prefix="acl")
        s.commit()
        set_status(s, BOOTSTRAP_ACTOR, "acl-0003", "disable")
        set_status(s, BOOTSTRAP_ACTOR, "acl-0004", "retire")
        passwd, _acl, n = export_mosquitto(
            s, BOOTSTRAP_ACTOR, tmp_path / "broker", "iot-ingest", "ingest-pw", replay_user="iot-replay",
            replay_password="replay-pw",
        )  # fmt: skip
        s.commit()
    engine.dispose()
    assert n == 3
    mosquitto.stop()
    mosquitto.extra_conf = (passwd.parent / "listener.conf").read_text()  # exactly what the export wrote
    mosquitto.start()
    return secrets


def test_devices_publish_only_under_their_own_id(fleet: dict[str, str], connect: Any) -> None:
    ingest = connect("iot-ingest", "ingest-pw")
    assert ingest.connack.value == 0
    ingest.client.subscribe("devices/#", qos=1)
    dev1 = connect("acl-0000", fleet["acl-0000"])
    assert dev1.connack.value == 0

    # the subscription is live once a message on an allowed topic arrives
    wait_for(
        lambda: (
            dev1.publish("devices/acl-0000/status", b"online").value == 0
            and ("devices/acl-0000/status", b"online") in ingest.messages
        ),
        10,
        "the ingest account to receive an allowed message",
    )

    denied = dev1.publish("devices/acl-0001/telemetry", b'{"temperature": 99}')
    assert denied.value == NOT_AUTHORIZED
    assert dev1.publish("devices/acl-0000/telemetry", b'{"temperature": 21}').value == 0
    wait_for(
        lambda: ("devices/acl-0000/telemetry", b'{"temperature": 21}') in ingest.messages, 10, "the control message"
    )
    assert not any(topic.startswith("devices/acl-0001/") for topic, _ in ingest.messages)

    dev2 = connect("acl-0001", fleet["acl-0001"])
    assert dev2.publish("devices/acl-0001/telemetry", b'{"temperature": 20}').value == 0
    wait_for(
        lambda: ("devices/acl-0001/telemetry", b'{"temperature": 20}') in ingest.messages, 10, "acl-0001's own message"
    )


@pytest.mark.parametrize(
    ("user", "password"),
    [
        ("acl-0000", "wrong-secret"),
        ("acl-0003", None),  # disabled
        ("acl-0004", None),  # retired
        ("stranger", "whatever"),
        ("iot-ingest", "not-the-ingest-pw"),
    ],
)
def test_bad_disabled_and_retired_credentials_are_refused(
    fleet: dict[str, str], connect: Any, user: str, password: str | None
) -> None:
    conn = connect(user, password if password is not None else fleet[user])
    assert conn.connack.is_failure
    assert conn.connack.value in (BAD_CREDENTIALS, NOT_AUTHORIZED)


def test_a_device_cannot_take_over_or_wipe_the_ingest_session(fleet: dict[str, str], connect: Any) -> None:
    """A device credential asking for the daemon's client id gets its own client id instead: the
    daemon is not kicked off, and its persistent session (with queued messages) survives a clean start."""
    ingest = connect("iot-ingest", "ingest-pw", client_id="iot-ingest", persistent=True)
    assert ingest.connack.value == 0
    ingest.client.subscribe("devices/#", qos=1)
    dev = connect("acl-0000", fleet["acl-0000"])
    wait_for(
        lambda: (
            dev.publish("devices/acl-0000/status", b"online").value == 0
            and ("devices/acl-0000/status", b"online") in ingest.messages
        ),
        10,
        "the ingest subscription to be live",
    )

    # while the daemon is connected: the same client id from a device credential, clean start
    attacker = connect("acl-0001", fleet["acl-0001"], client_id="iot-ingest")
    assert attacker.connack.value == 0  # connected, but as client "acl-0001"
    assert dev.publish("devices/acl-0000/telemetry", b'{"n": 0}').value == 0
    wait_for(lambda: ("devices/acl-0000/telemetry", b'{"n": 0}') in ingest.messages, 10, "a message after the attack")
    assert ingest.disconnects == [] and ingest.client.is_connected()
    attacker.client.disconnect()

    # while the daemon is away: messages queue in its session; a clean start under its id must not wipe them
    ingest.client.disconnect()
    wait_for(lambda: len(ingest.disconnects) == 1, 10, "the ingest client to disconnect")
    ingest.client.loop_stop()
    queued = [f'{{"n": {i}}}'.encode() for i in range(1, 51)]
    for payload in queued:
        assert dev.publish("devices/acl-0000/telemetry", payload).value == 0
    wiper = connect("acl-0001", fleet["acl-0001"], client_id="iot-ingest")
    assert wiper.connack.value == 0
    wiper.client.disconnect()

    back = connect("iot-ingest", "ingest-pw", client_id="iot-ingest", persistent=True)
    assert back.connack.value == 0 and back.connacks[0] is True  # the session is still there
    wait_for(
        lambda: all(("devices/acl-0000/telemetry", p) in back.messages for p in queued),
        10,
        "all 50 queued messages to reach the ingest session",
    )


def test_the_export_refuses_a_device_named_like_the_ingest_account(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    migrate(engine)
    with Session(engine) as s:
        provision_fleet(s, BOOTSTRAP_ACTOR, 1, ["thermostat"], prefix="collector")
        s.commit()
        with pytest.raises(ValueError, match="named like the service account"):
            export_mosquitto(s, BOOTSTRAP_ACTOR, tmp_path / "broker", "collector-0000", "pw")
    engine.dispose()


def test_the_deploy_config_binds_client_ids(fleet: dict[str, str], mosquitto: Mosquitto, connect: Any) -> None:
    """deploy/mosquitto/mosquitto.conf itself (paths and port swapped for the test's) refuses anonymous
    clients and gives a device credential its own client id, whatever it asks for."""
    deploy = (Path(__file__).parent.parent / "deploy" / "mosquitto" / "mosquitto.conf").read_text()
    auth = Path(mosquitto.extra_conf.split("password_file ", 1)[1].splitlines()[0]).parent
    text = (
        deploy.replace("listener 1883", f"listener {mosquitto.port} 127.0.0.1")
        .replace("/mosquitto/auth/", f"{auth}/")
        .replace("/mosquitto/data/", f"{mosquitto.dir}/")
    )
    assert "use_username_as_clientid true" in text and f"{auth}/passwd" in text
    mosquitto.stop()

    def write_conf() -> None:
        mosquitto.conf.write_text(text + "user root\n")

    mosquitto.write_conf = write_conf  # type: ignore[method-assign]
    mosquitto.start()

    ingest = connect("iot-ingest", "ingest-pw", client_id="iot-ingest", persistent=True)
    assert ingest.connack.value == 0
    attacker = connect("acl-0000", fleet["acl-0000"], client_id="iot-ingest")
    assert attacker.connack.value == 0
    assert attacker.publish("devices/acl-0001/telemetry", b'{"t": 1}').value == NOT_AUTHORIZED
    assert attacker.publish("devices/acl-0000/telemetry", b'{"t": 1}').value in (0, 16)  # 16: no subscribers
    assert ingest.disconnects == [] and ingest.client.is_connected()
    anonymous = connect("", "")
    assert anonymous.connack.is_failure


def test_the_replay_account_publishes_for_any_device_without_touching_the_ingest_session(
    fleet: dict[str, str], connect: Any, tmp_path: Path, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    ingest = connect("iot-ingest", "ingest-pw", client_id="iot-ingest", persistent=True)
    ingest.client.subscribe("devices/#", qos=1)
    dev = connect("acl-0000", fleet["acl-0000"])
    wait_for(
        lambda: (
            dev.publish("devices/acl-0000/status", b"online").value == 0
            and ("devices/acl-0000/status", b"online") in ingest.messages
        ),
        10,
        "the ingest subscription to be live",
    )
    url = f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    engine = make_engine(url)
    store = DeadLetterStore(engine)
    store.write([DeadLetter("invalid_json", "devices/acl-0001/telemetry", b'{"t": 1', time.time(), "", "acl-0001")])
    engine.dispose()
    monkeypatch.setenv("IOT_REGISTRY_URL", url)
    monkeypatch.delenv("IOT_API_KEY", raising=False)

    as_ingest = run_iot(monkeypatch, capsys, "deadletters", "replay", "--all", "--broker",
                        f"mqtt://iot-ingest:ingest-pw@127.0.0.1:{mosquitto.port}")  # fmt: skip
    assert as_ingest.code == 2 and "must not connect as the ingest account" in as_ingest.err
    r = run_iot(monkeypatch, capsys, "deadletters", "replay", "--all", "--broker",
                f"mqtt://iot-replay:replay-pw@127.0.0.1:{mosquitto.port}")  # fmt: skip
    assert r.code == 0, r.err
    wait_for(lambda: ("devices/acl-0001/telemetry", b'{"t": 1') in ingest.messages, 10, "the replayed message")
    assert ingest.disconnects == [] and ingest.client.is_connected()

    spy = connect("iot-replay", "replay-pw")  # the replay account reads nothing
    spy.client.subscribe("devices/#", qos=1)
    assert dev.publish("devices/acl-0000/telemetry", b'{"t": 2}').value == 0
    wait_for(lambda: ("devices/acl-0000/telemetry", b'{"t": 2}') in ingest.messages, 10, "the control message")
    assert spy.messages == []


def test_the_daemon_keeps_its_session_against_a_device_using_its_client_id(
    fleet: dict[str, str], connect: Any, tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """The real daemon on the exported broker config: a device credential connecting with client id
    ``iot-ingest`` neither disconnects it nor, while it is down, wipes the messages queued for it."""
    daemon = DaemonProcess(
        tmp_path / "daemon",
        {
            "IOT_BROKER_URL": f"mqtt://iot-ingest@127.0.0.1:{mosquitto.port}",
            "IOT_BROKER_PASSWORD": "ingest-pw",
            "IOT_REGISTRY_URL": f"sqlite:///{tmp_path / 'registry.sqlite3'}",
            "IOT_UNKNOWN_DEVICES": "reject",
        },
    ).start()
    try:
        dev = connect("acl-0000", fleet["acl-0000"])
        received = 'iot_messages_received_total{kind="sensor_readings"}'
        assert dev.publish("devices/acl-0000/telemetry", b'{"ts": 1764038400000, "t": 0}').value == 0
        wait_for(lambda: daemon.metrics().get(received) == 1, 20, "the daemon to take the first reading")

        attacker = connect("acl-0001", fleet["acl-0001"], client_id="iot-ingest")
        assert attacker.connack.value == 0
        assert dev.publish("devices/acl-0000/telemetry", b'{"ts": 1764038401000, "t": 1}').value == 0
        wait_for(lambda: daemon.metrics().get(received) == 2, 20, "a reading after the attack")
        assert daemon.metrics().get("iot_broker_disconnects_total", 0) == 0
        attacker.client.disconnect()

        daemon.kill()  # down: the broker queues for its persistent session
        for i in range(50):
            assert (
                dev.publish("devices/acl-0000/telemetry", f'{{"ts": {1764038500000 + i}, "t": {i}}}'.encode()).value
                == 0
            )
        wiper = connect("acl-0001", fleet["acl-0001"], client_id="iot-ingest")  # clean start
        assert wiper.connack.value == 0
        wiper.client.disconnect()
        daemon.start()
        # at least once: the two readings of before may come again (same ts: stored once)
        wait_for(lambda: daemon.metrics().get(received, 0) >= 50, 30, "all 50 queued readings after the restart")
        assert daemon.output().count("(session present: True)") == 1
    finally:
        daemon.kill()


def test_the_broker_disconnects_a_device_that_publishes_over_the_packet_limit(
    fleet: dict[str, str], connect: Any
) -> None:
    """The exported ``max_packet_size`` (payload limit + header room): a device's oversize publish is
    refused at the broker, which disconnects the device (no PUBACK); it never reaches the ingest
    account, whose connection is untouched; a publish within the limit goes through."""
    ingest = connect("iot-ingest", "ingest-pw", client_id="iot-ingest", persistent=True)
    ingest.client.subscribe("devices/#", qos=1)
    dev = connect("acl-0000", fleet["acl-0000"])
    wait_for(
        lambda: (
            dev.publish("devices/acl-0000/status", b"online").value == 0
            and ("devices/acl-0000/status", b"online") in ingest.messages
        ),
        10,
        "the ingest subscription to be live",
    )
    limit = Settings().max_payload_bytes
    info = dev.client.publish("devices/acl-0000/telemetry", b"x" * (limit + 256 * 1024), qos=1)
    wait_for(lambda: bool(dev.disconnects), 10, "the broker to disconnect the device")
    assert info.mid not in dev.acks
    dev.client.loop_stop()  # paho would resend the refused message on every reconnect
    fits = b"y" * limit
    assert connect("acl-0000", fleet["acl-0000"]).publish("devices/acl-0000/telemetry", fits).value == 0
    wait_for(lambda: ("devices/acl-0000/telemetry", fits) in ingest.messages, 10, "a message within the limit")
    assert [t for t, p in ingest.messages if len(p) > limit] == []
    assert ingest.disconnects == [] and ingest.client.is_connected()


def _export_for_workers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, mosquitto: Mosquitto
) -> str:
    """``iot registry export-mosquitto --workers 2`` over the fleet's registry; the broker restarted on it."""
    monkeypatch.setenv("IOT_REGISTRY_URL", f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    monkeypatch.setenv("IOT_BROKER_PASSWORD", "ingest-pw")
    monkeypatch.delenv("IOT_API_KEY", raising=False)
    r = run_iot(
        monkeypatch, capsys, "registry", "export-mosquitto", "--dir", str(tmp_path / "broker"), "--workers", "2"
    )
    assert r.code == 0, r.err
    assert "ingest-pw" not in r.out + r.err
    mosquitto.stop()
    mosquitto.extra_conf = (tmp_path / "broker" / "listener.conf").read_text()
    mosquitto.start()
    return r.out


def test_workers_and_the_evaluator_keep_their_sessions_on_the_exported_broker(
    fleet: dict[str, str], connect: Any, tmp_path: Path, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """`iot ingest run --workers 2` on the broker files `export-mosquitto --workers 2` wrote: the two
    workers and the alert evaluator each connect as an account of their own (client ids are bound to
    usernames), so none takes another's session over; every reading reaches a worker and the evaluator.
    (On the ingest account alone all three were client `iot-ingest`: each connection closed the
    previous one, and the evaluator's session carried the workers' shared subscription too.)"""
    out = _export_for_workers(monkeypatch, capsys, tmp_path, mosquitto)
    assert "iot-ingest + 3 worker/evaluator accounts" in out
    passwd = (tmp_path / "broker" / "passwd").read_text()
    assert [line.split(":")[0] for line in passwd.splitlines()][:4] == [
        "iot-ingest", "iot-ingest-0", "iot-ingest-1", "iot-ingest-alerts",
    ]  # fmt: skip
    daemon = DaemonProcess(
        tmp_path / "daemon",
        {
            "IOT_BROKER_URL": f"mqtt://iot-ingest@127.0.0.1:{mosquitto.port}",
            "IOT_BROKER_PASSWORD": "ingest-pw",
            "IOT_REGISTRY_URL": f"sqlite:///{tmp_path / 'registry.sqlite3'}",
            "IOT_UNKNOWN_DEVICES": "reject",
            "IOT_WORKERS": "2",
        },
    )

    def metrics(k: int) -> dict[str, float]:  # worker k on port + k, the evaluator on port + 2
        return worker_metrics(daemon, k)

    received = 'iot_messages_received_total{kind="sensor_readings"}'
    try:
        daemon.start()
        wait_for(lambda: all(metrics(k).get("iot_broker_subscribed") == 1.0 for k in (1, 2)), 30, "all to subscribe")
        dev = connect("acl-0000", fleet["acl-0000"])
        for i in range(20):
            payload = f'{{"ts": {1764038400000 + i}, "t": {i}}}'.encode()
            assert dev.publish("devices/acl-0000/telemetry", payload).value == 0
        wait_for(lambda: metrics(0).get(received, 0) + metrics(1).get(received, 0) == 20, 30, "the workers' 20")
        wait_for(lambda: metrics(2).get(received, 0) == 20, 30, "the evaluator's 20")
        for k in range(3):
            assert metrics(k).get("iot_broker_disconnects_total", 0) == 0, k
            assert metrics(k).get("iot_broker_subscribed") == 1.0, k
        assert "took over" not in daemon.output()
        assert "ingest-pw" not in daemon.output()
        broker_log = mosquitto.log.read_text()
        for account in ("iot-ingest-0", "iot-ingest-1", "iot-ingest-alerts"):
            assert f"as {account} (p5, c0, k30, u'{account}')" in broker_log
        assert "already connected, closing old connection" not in broker_log
    finally:
        rc = daemon.terminate()
    assert rc == 0, daemon.output()[-3000:]


def test_two_connections_on_one_account_name_the_takeover_and_the_user(
    fleet: dict[str, str], mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    """On the exported listener config, two native sessions of the ingest account with different
    client ids are one client to the broker: each logs one ERROR naming the takeover and the user."""
    caplog.set_level(logging.DEBUG, "iot.mqtt")
    sessions = []
    for cid in ("iot-ingest-0", "iot-ingest-1"):
        rec = Recorder()
        opts = Options("127.0.0.1", mosquitto.port, cid, [("devices/#", 1)], reconnect_min=0.05,
                       username="iot-ingest", password="ingest-pw")  # fmt: skip
        sessions.append((MqttSession(opts, rec), rec))
    try:
        for session, _ in sessions:
            session.start()
        wait_for(lambda: all(rec.problems for _, rec in sessions), 30, "both sessions to name the takeover")
        errors = [r.getMessage() for r in caplog.records if r.name == "iot.mqtt" and r.levelno >= logging.ERROR]
        for cid in ("iot-ingest-0", "iot-ingest-1"):
            [error] = [e for e in errors if f"client id {cid!r}" in e]
            assert "took over the session" in error
            assert "where the broker uses usernames as client ids, as user 'iot-ingest'" in error
            assert "ingest-pw" not in error
        assert all([p.kind if p else None for p in rec.problems] == [ProblemKind.TAKEN_OVER] for _, rec in sessions)
    finally:
        for session, _ in sessions:
            session.stop()
