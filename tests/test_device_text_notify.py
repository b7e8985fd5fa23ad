"""Device text in notifications is data: Slack shows ``<!channel>`` and disguised links as typed, and
an event message holding U+2028 or CR/LF neither fails the alert's e-mails nor adds a header.

Real receivers (tests/notify_servers.py): an HTTP server keeping the Slack JSON body, aiosmtpd with
STARTTLS and AUTH. The message enters as the alert engine hands it on (a Transition's message, from
the event's), as a payload queued before decode-time refusal would have.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from registry.alerts import store
from registry.alerts.engine import OPEN, Transition
from registry.alerts.rules import Rule, RuleKind
from registry.auth import BOOTSTRAP_ACTOR
from registry.db import make_engine, migrate
from registry.models import Alert, AlertRule, Device
from registry.notify.channels import ChannelSpec, add_channel
from registry.notify.models import NotifyOutbox
from registry.notify.netguard import NetGuard
from registry.notify.notifier import Notifier
from registry.notify.outbox import RetryPolicy
from tests.notify_servers import HttpReceiver, SmtpServer

LOOPBACK = NetGuard([ipaddress.ip_network("127.0.0.0/8")])  # the receivers listen on loopback

FAST = RetryPolicy(base_s=0.05, cap_s=0.3, max_attempts=25, lease_s=10)
SLACK_ATTACK = "pressure <!channel> log in at <http://evil.example|https://sso.example.org/login> & <@U123>"
MAIL_ATTACK = "pump failed\u2028Bcc: victim@example.org\r\nX-Injected: yes\u2029\x85end"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    migrate(url)
    eng = make_engine(url)
    with Session(eng) as s, s.begin():
        s.add(Device(id="d1", type="pump", site="paris", labels={}, status="active", online=True,
                     created_at=datetime.now(UTC)))  # fmt: skip
        store.add_rule(s, BOOTSTRAP_ACTOR, Rule(0, "pump-errors", RuleKind.EVENT, "critical", level="error"))
    yield eng
    eng.dispose()


def _open_alert(engine: Engine, message: str) -> int:
    with Session(engine) as s:
        rule_id = int(s.scalar(select(AlertRule.id).where(AlertRule.name == "pump-errors")) or 0)
    t = Transition(OPEN, rule_id, "d1", datetime.now(UTC).timestamp(), None, message, "critical", "paris")
    with Session(engine) as s, s.begin():
        store.apply_transitions(s, [t])
    with Session(engine) as s:
        return int(s.scalar(select(func.max(Alert.id))) or 0)


def _channel(engine: Engine, spec: ChannelSpec) -> None:
    with Session(engine) as s, s.begin():
        add_channel(s, BOOTSTRAP_ACTOR, spec)


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)


def test_slack_shows_mentions_and_links_from_a_device_as_text(engine: Engine, http_receiver: HttpReceiver) -> None:
    _channel(engine, ChannelSpec("chat", "slack", http_receiver.url("/slack")))
    _open_alert(engine, SLACK_ATTACK)
    assert Notifier(engine, {}, policy=FAST, poll_s=0.05, timeout=5, guard=LOOPBACK).run_once() == 1

    (body,) = http_receiver.bodies("/slack")
    for text in _strings(body):  # text, title, fields, footer: nothing Slack would act on
        assert "<" not in text and ">" not in text, text
    assert "&lt;!channel&gt;" in body["text"]
    assert "&lt;http://evil.example|https://sso.example.org/login&gt;" in body["text"]
    assert "&amp; &lt;@U123&gt;" in body["text"]
    assert "&amp;amp;" not in body["text"]  # escaped once


def test_a_line_separator_in_an_event_message_does_not_silence_its_mails(engine: Engine, smtp: SmtpServer) -> None:
    _channel(
        engine,
        ChannelSpec(
            "mail",
            "email",
            "oncall@example.org",
            secret_name="smtp",
            options={
                "host": "127.0.0.1",
                "port": smtp.port,
                "user": smtp.user,
                "from": "iot@example.org",
                "ca_file": str(smtp.cert),
            },
        ),
    )
    _open_alert(engine, MAIL_ATTACK)
    assert (
        Notifier(engine, {"smtp": smtp.password}, policy=FAST, poll_s=0.05, timeout=5, guard=LOOPBACK).run_once() == 1
    )

    with Session(engine) as s:
        row = s.scalars(select(NotifyOutbox)).one()
    assert (row.status, row.attempts) == ("sent", 1)
    ((rcpts, msg),) = smtp.messages
    assert rcpts == ["oncall@example.org"]  # no Bcc smuggled in
    assert msg["X-Injected"] is None and msg["Bcc"] is None
    subject = re.sub(r"\r?\n(?=[ \t])", "", str(msg["Subject"]))  # unfold (RFC 5322 2.2.3)
    assert subject.startswith("[CRITICAL] opened: pump-errors on d1 (paris): pump failed Bcc: victim@example.org")
    assert not any(c in subject for c in "\r\n\u2028\u2029\x85")
    body = msg.get_payload(decode=True).decode()
    message_line = next(line for line in body.splitlines() if line.startswith("message"))
    assert "pump failed Bcc: victim@example.org X-Injected: yes end" in message_line
    assert not any(line.startswith(("Bcc", "X-Injected")) for line in body.splitlines())
