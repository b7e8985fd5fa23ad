"""Alert notifications against real receivers (an HTTP server, aiosmtpd with STARTTLS + AUTH) and a
real registry database (SQLite; PostgreSQL for concurrent workers): routing, bodies, signatures,
every attempt on record, a receiver down and back, several workers, restarts, reminders."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from ingest.metrics import Metrics
from registry.alerts import store
from registry.alerts.engine import OPEN, RESOLVE, Transition
from registry.alerts.rules import Rule, RuleKind
from registry.auth import BOOTSTRAP_ACTOR, Actor
from registry.db import make_engine, migrate
from registry.devices import add_device
from registry.models import Alert, Device
from registry.notify import outbox
from registry.notify.channels import ChannelError, ChannelSpec, add_channel, list_channels
from registry.notify.models import NotifyAttempt, NotifyOutbox
from registry.notify.netguard import DELIVERY_FAILED, NetGuard
from registry.notify.notifier import Notifier
from registry.notify.outbox import RetryPolicy
from registry.notify.render import SIGNATURE_HEADER, Route
from tests.daemon_proc import DaemonProcess
from tests.keyed_cli import migrated_registry_url
from tests.notify_servers import HttpReceiver, SmtpServer, dead_receiver, trickling_http, trickling_smtp
from tests.servers import Mosquitto, wait_for

OPERATOR = Actor("olga", "operator", None)
FAST = RetryPolicy(base_s=0.05, cap_s=0.3, max_attempts=1000, lease_s=10)
HMAC_KEY = "hook-key-1234"
LOCAL = "127.0.0.0/8"  # the receivers here listen on loopback: allowed explicitly
LOOPBACK = NetGuard([ipaddress.ip_network(LOCAL)])


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(migrated_registry_url(request, tmp_path))
    _seed(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Engine]:
    migrate(postgres_url)
    engine = make_engine(postgres_url)
    _seed(engine)
    yield engine
    engine.dispose()


def _seed(engine: Engine) -> None:
    with Session(engine) as s, s.begin():
        for i, site in enumerate(("paris", "lyon")):
            s.add(Device(id=f"d{i + 1}", type="thermo", site=site, labels={}, status="active", online=True,
                         created_at=datetime.now(UTC)))  # fmt: skip
        store.add_rule(
            s,
            BOOTSTRAP_ACTOR,
            Rule(0, "hot", RuleKind.THRESHOLD, "major", field="temperature", op=">", threshold=80.0),
        )
        store.add_rule(
            s, BOOTSTRAP_ACTOR, Rule(0, "warm", RuleKind.THRESHOLD, "minor", field="humidity", op=">", threshold=9)
        )


def channel(engine: Engine, spec: ChannelSpec) -> None:
    with Session(engine) as s, s.begin():
        add_channel(s, BOOTSTRAP_ACTOR, spec)


def rule_id(engine: Engine, name: str) -> int:
    from registry.models import AlertRule

    with Session(engine) as s:
        return int(s.scalar(select(AlertRule.id).where(AlertRule.name == name)) or 0)


def open_alert(engine: Engine, device: str = "d1", rule: str = "hot", at: float | None = None) -> int:
    site = {"d1": "paris", "d2": "lyon"}.get(device)
    sev = "major" if rule == "hot" else "minor"
    t = Transition(OPEN, rule_id(engine, rule), device, at or datetime.now(UTC).timestamp(), 91.0, "too hot", sev, site)
    with Session(engine) as s, s.begin():
        store.apply_transitions(s, [t])
    with Session(engine) as s:
        return int(s.scalar(select(func.max(Alert.id))) or 0)


def notifier(engine: Engine, **kw: object) -> Notifier:
    kw = {"timeout": 5, "guard": LOOPBACK, "policy": FAST, **kw}
    secrets = {"hook": HMAC_KEY, "smtp": "s3cret-smtp"}
    return Notifier(engine, secrets, poll_s=0.05, **kw)  # type: ignore[arg-type]


def outbox_rows(engine: Engine) -> list[NotifyOutbox]:
    with Session(engine) as s:
        return list(s.scalars(select(NotifyOutbox).order_by(NotifyOutbox.id)))


# -- pure ---------------------------------------------------------------------------------------


def test_route_by_severity_site_and_event() -> None:
    r = Route("major", "paris", ("opened", "resolved"))
    assert r.wants("major", "paris", "opened") and r.wants("critical", "paris", "resolved")
    assert not r.wants("minor", "paris", "opened")
    assert not r.wants("major", "lyon", "opened")
    assert not r.wants("major", "paris", "acknowledged")
    assert Route("info", None, ("opened",)).wants("info", None, "opened")


def test_backoff_grows_is_capped_and_jittered() -> None:
    p = RetryPolicy(base_s=1, cap_s=10)
    assert [p.delay(n, lambda: 1.0) for n in (1, 2, 3, 4, 5, 6)] == [1, 2, 4, 8, 10, 10]
    assert p.delay(3, lambda: 0.0) == 2.0  # half, at the low end of the jitter


def test_channel_validation() -> None:
    with pytest.raises(ChannelError, match="secret"):
        ChannelSpec("x", "webhook", "https://u:p@example.org/hook").validate()
    with pytest.raises(ChannelError, match="kind"):
        ChannelSpec("x", "pager", "https://example.org").validate()
    with pytest.raises(ChannelError, match="smtp-host"):
        ChannelSpec("x", "email", "a@example.org").validate()
    with pytest.raises(ChannelError, match="severity"):
        ChannelSpec("x", "slack", "https://example.org/h", min_severity="huge").validate()


# -- end to end against real receivers ---------------------------------------------------------


def test_open_ack_resolve_reach_webhook_slack_and_email(
    db: Engine, http_receiver: HttpReceiver, smtp: SmtpServer
) -> None:
    smtp_server = smtp
    channel(db, ChannelSpec("ops", "webhook", http_receiver.url("/ops"), secret_name="hook"))
    channel(db, ChannelSpec("chat", "slack", http_receiver.url("/slack"), min_severity="major"))
    channel(
        db,
        ChannelSpec(
            "mail",
            "email",
            "oncall@example.org",
            secret_name="smtp",
            options={
                "host": "127.0.0.1",
                "port": smtp_server.port,
                "user": smtp_server.user,
                "from": "iot@example.org",
                "ca_file": str(smtp_server.cert),
            },
        ),
    )
    channel(db, ChannelSpec("lyon-only", "webhook", http_receiver.url("/lyon"), site="lyon"))
    alert_id = open_alert(db)
    n = notifier(db)
    assert n.run_once() == 3  # paris alert: not for the lyon channel
    with Session(db) as s, s.begin():
        store.acknowledge(s, OPERATOR, alert_id, note="on it")
    with Session(db) as s, s.begin():
        store.resolve(s, OPERATOR, alert_id)
    assert n.run_once() == 6

    ops = http_receiver.bodies("/ops")
    assert [b["transition"] for b in ops] == ["opened", "acknowledged", "resolved"]
    first = ops[0]
    assert first["alert"]["id"] == alert_id and first["alert"]["severity"] == "major"
    assert first["rule"]["name"] == "hot" and first["device"] == {"id": "d1", "type": "thermo", "site": "paris"}
    assert first["summary"].startswith("[MAJOR] opened: hot on d1 (paris)") and "http" not in first["summary"]
    assert ops[1]["actor"] == "olga" and ops[1]["alert"]["status"] == "acknowledged"
    for r in [r for r in http_receiver.received if r.path == "/ops"]:
        expected = "sha256=" + hmac.new(HMAC_KEY.encode(), r.body, hashlib.sha256).hexdigest()
        assert r.header(SIGNATURE_HEADER) == expected
    slack = http_receiver.bodies("/slack")
    assert len(slack) == 3 and slack[0]["text"].startswith("[MAJOR] opened")
    assert slack[0]["attachments"][0]["fields"][2] == {"title": "Device", "value": "d1", "short": True}
    assert next(r for r in http_receiver.received if r.path == "/slack").header(SIGNATURE_HEADER) is None
    assert http_receiver.bodies("/lyon") == []

    assert [m["Subject"].split(":")[0] for _, m in smtp_server.messages] == [
        "[MAJOR] opened",
        "[MAJOR] acknowledged by olga",
        "[MAJOR] resolved by olga",
    ]
    assert smtp_server.messages[0][0] == ["oncall@example.org"]
    assert smtp_server.auth_ok, "the server authenticated the notifier (after STARTTLS)"

    with Session(db) as s:
        shown = store.show_alert(s, BOOTSTRAP_ACTOR, alert_id).notifications
    assert len(shown) == 9 and all(r.ok and r.status == "sent" for r in shown)
    assert {r.status_code for r in shown} == {200, 250}


def test_down_receiver_then_back_nothing_lost_nothing_twice(db: Engine, http_receiver: HttpReceiver) -> None:
    channel(db, ChannelSpec("ops", "webhook", http_receiver.url()))
    http_receiver.stop()
    n = notifier(db).start()
    try:
        ids = [open_alert(db, "d1"), open_alert(db, "d2")]
        wait_for(lambda: _failed_attempts(db) >= 4, 20, "failed attempts while the receiver is down")
        http_receiver.start()
        wait_for(lambda: all(o.status == "sent" for o in outbox_rows(db)), 20, "delivery once the receiver is back")
    finally:
        n.stop()
    keys = Counter(str(r.header("X-IOT-Delivery")) for r in http_receiver.received)
    assert sorted(keys) == sorted(f"{i}:1:opened" for i in ids) and set(keys.values()) == {1}
    with Session(db) as s:
        rows = store.show_alert(s, BOOTSTRAP_ACTOR, ids[0]).notifications
    failed = [r for r in rows if r.ok is False]
    assert failed and all(r.error == DELIVERY_FAILED for r in failed)
    assert rows[-1].ok is True and rows[-1].status_code == 200


def test_http_errors_are_recorded_and_retried(db: Engine, http_receiver: HttpReceiver) -> None:
    channel(db, ChannelSpec("ops", "webhook", http_receiver.url()))
    http_receiver.status = 503
    alert_id = open_alert(db)
    metrics = Metrics()
    n = notifier(db, counts=metrics)
    n.run_once()
    assert metrics.value("iot_notifications_failed_total", channel="webhook") == n.failed_attempts >= 1
    http_receiver.status = 200
    wait_for(lambda: n.run_once() >= 0 and outbox_rows(db)[0].status == "sent", 10, "the retry")
    assert metrics.value("iot_notifications_sent_total", channel="webhook") == 1
    with Session(db) as s:
        rows = store.show_alert(s, BOOTSTRAP_ACTOR, alert_id).notifications
    assert rows[0].status_code == 503 and rows[0].ok is False and "HTTP 503" in (rows[0].error or "")
    assert rows[-1].status_code == 200 and len(http_receiver.received) == 1


def test_missing_secret_is_an_attempt_not_a_crash(db: Engine, http_receiver: HttpReceiver) -> None:
    channel(db, ChannelSpec("ops", "webhook", http_receiver.url(), secret_name="nope"))
    open_alert(db)
    later = RetryPolicy(base_s=60, cap_s=60, max_attempts=1000, lease_s=10)  # no retry within the round
    assert notifier(db, policy=later).run_once() == 1
    with Session(db) as s:
        att = s.scalars(select(NotifyAttempt)).one()
    assert not att.ok and "'nope' is not set" in (att.error or "")
    assert http_receiver.received == []


def test_no_channel_no_outbox_and_transitions_still_commit(db: Engine) -> None:
    open_alert(db)
    assert outbox_rows(db) == []
    with Session(db) as s:
        assert s.scalar(select(func.count()).select_from(Alert)) == 1


def test_failed_transition_queues_nothing(db: Engine, http_receiver: HttpReceiver) -> None:
    channel(db, ChannelSpec("ops", "webhook", http_receiver.url()))
    alert_id = open_alert(db)
    with pytest.raises(RuntimeError), Session(db) as s, s.begin():
        store.acknowledge(s, OPERATOR, alert_id)
        raise RuntimeError("rolled back")
    assert [o.transition for o in outbox_rows(db)] == ["opened"]


@pytest.mark.postgres
def test_several_workers_and_a_restart_send_each_once(pg: Engine, http_receiver: HttpReceiver) -> None:
    channel(pg, ChannelSpec("ops", "webhook", http_receiver.url()))
    channel(pg, ChannelSpec("chat", "slack", http_receiver.url("/slack")))
    for i in range(20):  # each opened and resolved: 40 transitions, 80 notifications
        open_alert(pg, "d1" if i % 2 else "d2", "hot" if i < 10 else "warm")
        _resolve_all(pg)
    with Session(pg) as s:
        n_alerts = s.scalar(select(func.count()).select_from(Alert))
    assert n_alerts == 20
    expected = {o.key for o in outbox_rows(pg)}
    assert len(expected) == 80
    # damping off: each pair opens five alerts in a second, and this test is about claims, not damping
    first = [notifier(pg, worker=f"w{i}", batch=2, damping_window_s=0) for i in range(3)]
    for n in first:
        n.start()
    wait_for(lambda: len(http_receiver.received) >= 2, 20, "the first deliveries")
    first[0].stop()  # a worker goes away mid-run; another starts
    later = notifier(pg, worker="w-restarted", batch=2, damping_window_s=0).start()
    try:
        wait_for(lambda: all(o.status == "sent" for o in outbox_rows(pg)), 30, "every notification sent")
    finally:
        for n in [*first, later]:
            n.stop()
    keys = Counter(str(r.header("X-IOT-Delivery")) for r in http_receiver.received)
    assert set(keys) == expected and set(keys.values()) == {1}
    with Session(pg) as s:
        workers = set(s.scalars(select(NotifyAttempt.worker)))
    assert len(workers) >= 2, "the work was shared"


def _resolve_all(engine: Engine) -> None:
    with Session(engine) as s, s.begin():
        rows = list(s.scalars(select(Alert).where(Alert.status != "resolved")))
        store.apply_transitions(
            s, [Transition(RESOLVE, r.rule_id, r.device_id, datetime.now(UTC).timestamp()) for r in rows]
        )


def test_reminders_once_per_interval_across_notifiers(db: Engine, http_receiver: HttpReceiver) -> None:
    channel(db, ChannelSpec("ops", "webhook", http_receiver.url(), renotify_minutes=10, events=("opened",)))
    opened = datetime.now(UTC) - timedelta(minutes=25)
    alert_id = open_alert(db, at=opened.timestamp())
    now = datetime.now(UTC)
    with Session(db) as s, s.begin():
        assert outbox.enqueue_reminders(s, now) == 1
    with Session(db) as s, s.begin():
        assert outbox.enqueue_reminders(s, now) == 0  # a second notifier, same interval
    a, b = notifier(db, worker="a"), notifier(db, worker="b")
    threads = [threading.Thread(target=n.run_once) for n in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    bodies = http_receiver.bodies()
    assert sorted(b["transition"] for b in bodies) == ["opened", "reminder"]
    reminder = next(b for b in bodies if b["transition"] == "reminder")
    assert reminder["delivery"] == f"{alert_id}:1:reminder:2" and reminder["open_minutes"] == 25
    assert "still open after 25 min" in reminder["summary"]
    with Session(db) as s, s.begin():
        store.acknowledge(s, OPERATOR, alert_id)
    with Session(db) as s, s.begin():
        assert outbox.enqueue_reminders(s, now + timedelta(minutes=10)) == 0  # acknowledged: no more


def test_list_redacts_targets_and_names_secrets_only(db: Engine) -> None:
    channel(db, ChannelSpec("chat", "slack", "https://hooks.slack.example/services/T000/B000/XXXXSECRET"))
    channel(db, ChannelSpec("ops", "webhook", "https://example.org/hook", secret_name="hook"))
    with Session(db) as s:
        rows = {r["name"]: r for r in list_channels(s, BOOTSTRAP_ACTOR)}
    assert "XXXXSECRET" not in str(rows) and rows["chat"]["target"] == "https://hooks.slack.example/…"
    assert rows["ops"]["secret"] == "hook" and HMAC_KEY not in str(rows)


def _failed_attempts(engine: Engine) -> int:
    with Session(engine) as s:
        return int(s.scalar(select(func.count()).select_from(NotifyAttempt).where(NotifyAttempt.ok.is_(False))) or 0)


# -- the command line -----------------------------------------------------------------------------


def test_channels_cli_add_list_test_remove_and_show(
    tmp_path: Path, http_receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.cli_runner import run_iot

    url = f"sqlite:///{tmp_path / 'reg.sqlite3'}"
    migrate(url)
    engine = make_engine(url)
    _seed(engine)
    monkeypatch.setenv("IOT_REGISTRY_URL", url)
    secrets = {"hook": HMAC_KEY, "slackurl": http_receiver.url("/s/T0/XSECRET")}
    monkeypatch.setenv("IOT_NOTIFY_SECRETS", json.dumps(secrets))
    monkeypatch.setenv("IOT_NOTIFY_ALLOWED_NETWORKS", LOCAL)
    add = run_iot(monkeypatch, capsys, "alerts", "channels", "add", "ops", "--kind", "webhook",
                  "--url", http_receiver.url("/ops/tok3n"), "--secret", "hook", "--min-severity", "major")  # fmt: skip
    assert add.code == 0, add.err
    slack = run_iot(monkeypatch, capsys, "alerts", "channels", "add", "chat", "--kind", "slack",
                    "--url", "secret:slackurl", "--site", "paris")  # fmt: skip
    assert slack.code == 0, slack.err
    bad = run_iot(monkeypatch, capsys, "alerts", "channels", "add", "x", "--kind", "email", "--to", "a@b.c")
    assert bad.code == 2 and "smtp-host" in bad.err and "Traceback" not in bad.err
    listed = run_iot(monkeypatch, capsys, "alerts", "channels", "list", "--json")
    assert listed.code == 0
    assert [c["name"] for c in listed.json()] == ["chat", "ops"]
    assert "tok3n" not in listed.out and HMAC_KEY not in listed.out and "XSECRET" not in listed.out
    table = run_iot(monkeypatch, capsys, "alerts", "channels", "list")
    assert "ops" in table.out and "tok3n" not in table.out

    sent = run_iot(monkeypatch, capsys, "alerts", "channels", "test", "chat")
    assert sent.code == 0, sent.err and "sent (200" in sent.out
    assert http_receiver.received[-1].path == "/s/T0/XSECRET" and "XSECRET" not in sent.out + sent.err
    http_receiver.status = 500
    failed = run_iot(monkeypatch, capsys, "alerts", "channels", "test", "ops")
    assert failed.code == 1 and "HTTP 500" in failed.err and "tok3n" not in failed.err
    http_receiver.status = 200

    alert_id = open_alert(engine)
    from iot.cli.toolkit import settings

    s = settings()  # secrets and allowed networks from the settings layer
    assert Notifier(engine, s.notify_secrets, policy=FAST, guard=NetGuard(s.notify_allowed_networks)).run_once() == 2
    shown = run_iot(monkeypatch, capsys, "alerts", "show", str(alert_id))
    assert shown.code == 0 and "notifications" in shown.out and "ops" in shown.out and "200" in shown.out
    as_json = run_iot(monkeypatch, capsys, "alerts", "show", str(alert_id), "--json").json()
    got = [(n["channel"], n["transition"], n["ok"]) for n in as_json["notifications"]]
    assert got == [("ops", "opened", True), ("chat", "opened", True)]

    admin_key = run_iot(monkeypatch, capsys, "registry", "keys", "add", "--name", "root", "--role", "admin").out
    monkeypatch.setenv("IOT_API_KEY", admin_key.strip())
    viewer_key = run_iot(monkeypatch, capsys, "registry", "keys", "add", "--name", "vic", "--role", "viewer").out
    monkeypatch.setenv("IOT_API_KEY", viewer_key.strip())
    assert run_iot(monkeypatch, capsys, "alerts", "channels", "list").code == 0
    for denied in (("test", "ops"), ("remove", "ops"), ("add", "x", "--kind", "slack", "--url", "https://e.org/h")):
        res = run_iot(monkeypatch, capsys, "alerts", "channels", *denied)
        assert res.code == 3 and "permission denied" in res.err, denied
    monkeypatch.setenv("IOT_API_KEY", admin_key.strip())
    gone = run_iot(monkeypatch, capsys, "alerts", "channels", "remove", "ops")
    assert gone.code == 0
    again = run_iot(monkeypatch, capsys, "alerts", "channels", "remove", "ops")
    assert again.code == 1 and "no channel 'ops'" in again.err
    engine.dispose()


# -- through the running daemon -----------------------------------------------------------------


@pytest.mark.mosquitto
@pytest.mark.postgres
def test_daemon_notifies_open_and_resolve_while_a_dead_receiver_hangs(
    tmp_path: Path, mosquitto_server: Mosquitto, postgres_url: str, http_receiver: HttpReceiver
) -> None:
    """A spike through `iot ingest run` reaches the webhook; a receiver that never answers delays
    nothing: the daemon keeps storing and acknowledging while the notifier waits on it."""
    migrate(postgres_url)
    engine = make_engine(postgres_url)
    with Session(engine) as s, s.begin():
        add_device(s, BOOTSTRAP_ACTOR, "oven-1", type="thermo", site="plant-a")
        hot = Rule(
            0, "oven-hot", RuleKind.THRESHOLD, "critical", field="temperature", op=">", threshold=80, hysteresis=5
        )
        store.add_rule(s, BOOTSTRAP_ACTOR, hot)
    channel(engine, ChannelSpec("ops", "webhook", http_receiver.url(), secret_name="hook"))
    with socket.socket() as hole:  # accepts connections into its backlog, never answers
        hole.bind(("127.0.0.1", 0))
        hole.listen(16)
        channel(engine, ChannelSpec("dead", "webhook", f"http://127.0.0.1:{hole.getsockname()[1]}/x"))
        root = "ntfy"
        daemon = DaemonProcess.on_root(
            tmp_path / "daemon",
            mosquitto_server.url,
            root,
            registry=postgres_url,
            IOT_CLIENT_ID="ingest-notify-e2e",
            IOT_NOTIFY_SECRETS=json.dumps({"hook": HMAC_KEY}),
            IOT_NOTIFY_POLL="0.2",
            IOT_NOTIFY_ALLOWED_NETWORKS=LOCAL,
        ).start()
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="oven-1")
        pub.connect("127.0.0.1", mosquitto_server.port)
        pub.loop_start()
        start = time.time() - 60
        step = [0]

        def send(*values: float) -> None:
            for v in values:
                payload = json.dumps({"ts": int((start + step[0]) * 1000), "temperature": v})
                step[0] += 1
                pub.publish(f"{root}/oven-1/telemetry", payload, qos=1).wait_for_publish(10)

        try:
            t0 = time.monotonic()
            send(20, 95)
            wait_for(lambda: len(http_receiver.received) >= 1, 30, "the opened webhook")
            opened_after = time.monotonic() - t0
            send(*[50.0] * 20)  # back to normal, and more readings while "dead" holds the notifier
            wait_for(lambda: daemon.metrics().get("iot_messages_acked_total", 0) >= 22, 30, "ingestion to go on")
            wait_for(lambda: len(http_receiver.received) >= 2, 60, "the resolved webhook")
        finally:
            pub.loop_stop()
            pub.disconnect()
            rc = daemon.terminate()
    engine.dispose()
    assert rc == 0, daemon.output()[-3000:]
    bodies = http_receiver.bodies()
    assert [b["transition"] for b in bodies] == ["opened", "resolved"]
    assert bodies[0]["device"] == {"id": "oven-1", "type": "thermo", "site": "plant-a"}
    assert opened_after < 30
    print(f"opened webhook {opened_after:.2f}s after the spike was published")


def test_disabling_a_rule_notifies_the_resolution(db: Engine, http_receiver: HttpReceiver) -> None:
    channel(db, ChannelSpec("ops", "webhook", http_receiver.url()))
    alert_id = open_alert(db)
    with Session(db) as s, s.begin():
        store.set_rule_enabled(s, BOOTSTRAP_ACTOR, "hot", False)
    assert notifier(db).run_once() == 2
    bodies = http_receiver.bodies()
    assert [(b["transition"], b["alert"]["id"]) for b in bodies] == [("opened", alert_id), ("resolved", alert_id)]
    assert bodies[1]["actor"] == "local-admin" and bodies[1]["alert"]["status"] == "resolved"


class _Stuck:
    """A sender that never returns until released: a notifier that died mid-send."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()

    def send(self, d: outbox.Delivery, target: str, secret: str | None) -> outbox.AttemptResult:
        self.entered.set()
        self.release.wait(60)
        return outbox.AttemptResult(False, None, "died")


def test_a_notifier_dying_mid_send_loses_nothing(db: Engine, http_receiver: HttpReceiver) -> None:
    channel(db, ChannelSpec("ops", "webhook", http_receiver.url()))
    alert_id = open_alert(db)
    stuck = _Stuck()
    policy = RetryPolicy(base_s=0.05, cap_s=0.3, max_attempts=1000, lease_s=2)
    dead = Notifier(db, {}, policy=policy, senders={"webhook": stuck}, batch=1, timeout=0.1, worker="dead")
    thread = threading.Thread(target=dead.run_once, daemon=True)
    thread.start()
    assert stuck.entered.wait(10)
    live = Notifier(db, {}, policy=policy, batch=1, timeout=5, worker="live", guard=LOOPBACK)
    assert live.run_once() == 0, "the claim holds while its lease lasts"
    wait_for(lambda: live.run_once() == 1, 10, "the lease to run out and the live notifier to send")
    stuck.release.set()  # the dead one wakes up late with a failure: it must not reschedule
    thread.join(10)
    assert [o.status for o in outbox_rows(db)] == ["sent"]
    assert live.run_once() == 0 and len(http_receiver.received) == 1
    with Session(db) as s:
        rows = store.show_alert(s, BOOTSTRAP_ACTOR, alert_id).notifications
    assert [(r.ok, r.error) for r in rows] == [(True, None), (False, "died")]


# -- deadline, isolation, damping, rate (issue 16) --------------------------------------------------


def _attempts_of(engine: Engine, channel_name: str) -> list[NotifyAttempt]:
    from registry.notify.models import NotifyChannel

    with Session(engine) as s:
        return list(
            s.scalars(
                select(NotifyAttempt)
                .join(NotifyOutbox, NotifyOutbox.id == NotifyAttempt.outbox_id)
                .join(NotifyChannel, NotifyChannel.id == NotifyOutbox.channel_id)
                .where(NotifyChannel.name == channel_name)
                .order_by(NotifyAttempt.id)
            )
        )


def test_dead_and_trickling_receivers_delay_only_their_own_channels(db: Engine, http_receiver: HttpReceiver) -> None:
    """Beside a receiver that never answers and two that answer a byte every 0.3 s (HTTP, SMTP), a
    healthy channel gets every notification; each slow attempt ends at its overall deadline (1 s here,
    though no single read ever waits that long)."""
    slow_http, slow_smtp = trickling_http().start(), trickling_smtp().start()
    try:
        with dead_receiver() as dead_port:
            channel(db, ChannelSpec("ops", "webhook", http_receiver.url()))
            channel(db, ChannelSpec("dead", "webhook", f"http://127.0.0.1:{dead_port}/x"))
            channel(db, ChannelSpec("slow", "webhook", f"http://127.0.0.1:{slow_http.port}/x"))
            channel(db, ChannelSpec("slow-mail", "email", "a@example.org",
                                    options={"host": "127.0.0.1", "port": slow_smtp.port, "tls": "none"}))  # fmt: skip
            for i in range(6):
                open_alert(db, ("d1", "d2")[i % 2], ("hot", "warm")[i // 3])
                _resolve_all(db)
            n = notifier(db, timeout=1.0, damping_window_s=0).start()
            try:
                wait_for(lambda: len(http_receiver.received) == 12, 20, "every notification of the healthy channel")
                wait_for(lambda: bool(_attempts_of(db, "slow") and _attempts_of(db, "slow-mail")), 20, "slow attempts")
                wait_for(lambda: bool(_attempts_of(db, "dead")), 20, "an attempt on the dead receiver")
            finally:
                n.stop()
    finally:
        slow_http.stop()
        slow_smtp.stop()
    keys = Counter(str(r.header("X-IOT-Delivery")) for r in http_receiver.received)
    assert len(keys) == 12 and set(keys.values()) == {1}
    for name in ("slow", "slow-mail", "dead"):
        att = _attempts_of(db, name)[0]
        assert not att.ok and "deadline of 1 s exceeded" in (att.error or ""), (name, att.error)
        assert 900 <= att.elapsed_ms < 6000, (name, att.elapsed_ms)  # the deadline, not a per-read timeout
    assert slow_http.connections >= 1 and slow_smtp.connections >= 1


def test_channels_test_ends_at_the_attempt_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.cli_runner import run_iot

    url = f"sqlite:///{tmp_path / 'reg.sqlite3'}"
    migrate(url)
    engine = make_engine(url)
    slow = trickling_http().start()
    try:
        channel(engine, ChannelSpec("slow", "webhook", f"http://127.0.0.1:{slow.port}/x"))
        monkeypatch.setenv("IOT_REGISTRY_URL", url)
        monkeypatch.setenv("IOT_NOTIFY_ATTEMPT_TIMEOUT", "1")
        monkeypatch.setenv("IOT_NOTIFY_ALLOWED_NETWORKS", LOCAL)
        res = run_iot(monkeypatch, capsys, "alerts", "channels", "test", "slow")
    finally:
        slow.stop()
        engine.dispose()
    assert res.code == 1 and "not sent: deadline of 1 s exceeded" in res.err and "Traceback" not in res.err
    assert slow.connections == 1


def test_a_flapping_device_is_damped_and_the_count_carried(db: Engine, http_receiver: HttpReceiver) -> None:
    """30 alerts opened and resolved in a row, then one left open: each channel gets the first alert
    (opened, resolved), and once the window ends the open one, saying 29 were held back. The alert
    history keeps all 31."""
    channel(db, ChannelSpec("ops", "webhook", http_receiver.url("/ops")))
    channel(db, ChannelSpec("chat", "slack", http_receiver.url("/chat")))
    for _ in range(30):
        open_alert(db, "d1")
        _resolve_all(db)
    last = open_alert(db, "d1")
    open_alert(db, "d2")  # another device: its own group
    metrics = Metrics()
    n = notifier(db, damping_window_s=600, reminder_every_s=0, counts=metrics)
    assert n.run_once() == 6  # per channel: d1's first alert opened + resolved, d2 opened
    assert [(b["transition"], b["device"]["id"]) for b in http_receiver.bodies("/ops")] == [
        ("opened", "d1"),
        ("resolved", "d1"),
        ("opened", "d2"),
    ]
    assert http_receiver.bodies("/ops")[0]["suppressed"] == 0
    assert n.run_once() == 0  # within the window: the open alert stays held back
    assert n.run_once(datetime.now(UTC) + timedelta(seconds=601)) == 2  # the window ended: announced
    ops, chat = http_receiver.bodies("/ops"), http_receiver.bodies("/chat")
    assert len(ops) == 4 and len(chat) == 4
    assert ops[-1]["alert"]["id"] == last and ops[-1]["transition"] == "opened" and ops[-1]["suppressed"] == 29
    assert "+29 more" in ops[-1]["summary"] and "+29 more" in chat[-1]["text"]
    with Session(db) as s:
        assert s.scalar(select(func.count()).select_from(Alert)) == 32  # the history is complete
        statuses = Counter(s.scalars(select(NotifyOutbox.status)))
    assert statuses == {"sent": 8, "suppressed": 2 * 58}  # alerts 2-30, opened and resolved, per channel
    # held back: alerts 2-30 for good, and the last one per channel until the window ended
    assert metrics.value("iot_notifications_suppressed_total") == 2 * 58 + 2 == n.suppressed
    assert metrics.value("iot_notifications_sent_total", channel="slack") == 4
    with Session(db) as s:
        shown = store.show_alert(s, BOOTSTRAP_ACTOR, last - 1).notifications
    assert {r.status for r in shown} == {"suppressed"}  # held back, on record


def test_a_channel_sends_at_most_its_rate_and_the_rest_waits(db: Engine, http_receiver: HttpReceiver) -> None:
    channel(db, ChannelSpec("ops", "webhook", http_receiver.url()))
    for device in ("d1", "d2"):
        for rule in ("hot", "warm"):
            open_alert(db, device, rule)
    n = notifier(db, per_channel_per_minute=3)
    assert n.run_once() == 3 and len(http_receiver.received) == 3
    assert n.run_once() == 0  # still within the minute
    assert [o.attempts for o in outbox_rows(db)] == [1, 1, 1, 0]  # waiting is not a failed attempt
    assert n.run_once(datetime.now(UTC) + timedelta(seconds=61)) == 1
    assert len(http_receiver.received) == 4
