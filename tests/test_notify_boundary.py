"""Notification channels stay inside the site boundary and the notifier stays out of internal
networks (issue 16, item 1): each attack from the review is replayed — through the real `iot`
entry point on SQLite and PostgreSQL for the site checks, and against real local receivers for the
address checks (a loopback receiver stands in for an internal service)."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.db import make_engine
from registry.notify.email import EmailSender
from registry.notify.models import NotifyChannel
from registry.notify.netguard import DELIVERY_FAILED, NOT_ALLOWED, NetGuard, is_public
from registry.notify.outbox import AttemptResult, Delivery
from registry.notify.render import payload
from registry.notify.webhook import WebhookSender
from tests.keyed_cli import Iot, add_key, denied, make_iot, registry_url_for
from tests.notify_servers import BannerServer, HttpReceiver, SmtpServer
from tests.servers import free_port

LOOPBACK = NetGuard([ipaddress.ip_network("127.0.0.0/8")])


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return registry_url_for(request, tmp_path)


@pytest.fixture
def iot(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, registry_url: str) -> Iot:
    monkeypatch.delenv("IOT_NOTIFY_ALLOWED_NETWORKS", raising=False)
    return make_iot(monkeypatch, capsys, tmp_path, registry_url)


@pytest.fixture
def receiver(http_receiver: HttpReceiver) -> HttpReceiver:
    return http_receiver


@pytest.fixture
def keys(iot: Iot) -> dict[str, str]:
    """``root`` (no site limits), ``adminA`` (admin at site A); channels ``b-hook`` (site B) and
    ``everywhere`` (no site: every site's alerts) made by root."""
    assert iot("registry", "migrate").code == 0
    root = add_key(iot, None, "--name", "root", "--role", "admin")
    admin_a = add_key(iot, root, "--name", "adminA", "--role", "admin", "--site", "A")
    for name, site in (("b-hook", ("--site", "B")), ("everywhere", ())):
        r = iot("alerts", "channels", "add", name, "--kind", "webhook", "--url", "https://b.example/h", *site, key=root)
        assert r.code == 0, r.err
    return {"root": root, "adminA": admin_a}


def _channels(registry_url: str) -> dict[str, str | None]:
    engine = make_engine(registry_url)
    try:
        with Session(engine) as s:
            return {c.name: c.site for c in s.scalars(select(NotifyChannel))}
    finally:
        engine.dispose()


def _hook(iot: Iot, key: str, name: str, *args: str) -> tuple[int, str]:
    r = iot("alerts", "channels", "add", name, "--kind", "webhook", *args, key=key)
    return r.code, r.err


# -- the site boundary ----------------------------------------------------------------------------


def test_a_site_key_adds_channels_only_for_its_site(iot: Iot, keys: dict[str, str], registry_url: str) -> None:
    a = keys["adminA"]
    url = ("--url", "https://a.example/h")
    denied(iot("alerts", "channels", "add", "mine", "--kind", "webhook", *url, key=a))  # no --site: every site
    denied(iot("alerts", "channels", "add", "mine", "--kind", "webhook", *url, "--site", "B", key=a))
    assert _channels(registry_url) == {"b-hook": "B", "everywhere": None}
    r = iot("alerts", "channels", "add", "mine", "--kind", "webhook", *url, "--site", "A", key=a)
    assert r.code == 0, r.err
    assert "site A" in r.out and _channels(registry_url)["mine"] == "A"


def test_a_site_key_sees_tests_and_removes_only_its_sites_channels(
    iot: Iot, keys: dict[str, str], registry_url: str
) -> None:
    a = keys["adminA"]
    assert iot("alerts", "channels", "add", "mine", "--kind", "webhook", "--url", "https://a.example/h",
               "--site", "A", key=a).code == 0  # fmt: skip
    listed = json.loads(iot("alerts", "channels", "list", "--json", key=a).out)
    assert [c["name"] for c in listed] == ["mine"]  # not site B's, not the every-site channel
    assert "everywhere" not in iot("alerts", "channels", "list", key=a).out
    for other in ("b-hook", "everywhere"):
        for verb in ("test", "remove"):
            r = iot("alerts", "channels", verb, other, key=a)
            assert (r.code, r.err) == (1, f"error: no channel {other!r}\n"), (verb, other)
    assert set(_channels(registry_url)) == {"b-hook", "everywhere", "mine"}
    everything = json.loads(iot("alerts", "channels", "list", "--json", key=keys["root"]).out)
    assert [c["name"] for c in everything] == ["b-hook", "everywhere", "mine"]


def test_a_site_key_names_only_its_sites_secrets(
    iot: Iot, keys: dict[str, str], registry_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IOT_NOTIFY_SECRETS", json.dumps({"A/pw": "p", "A/slack": "https://s.example/", "smtp_pw": "q"}))
    a = keys["adminA"]
    at_a = ("--site", "A")
    smtp = ("--to", "x@evil.example", "--smtp-host", "mail.evil.example", "--smtp-user", "u", *at_a)
    attempts = [
        ("--url", "https://evil.example/h", "--secret", "smtp_pw", *at_a),  # a global secret
        ("--url", "https://evil.example/h", "--secret", "B/hook", *at_a),  # site B's
        ("--url", "secret:site_b_slack", *at_a),
        ("--url", "secret:B/slack", *at_a),
        ("--url", "secret:A_other/slack", *at_a),  # another site's name starting with "A"
    ]
    for args in attempts:
        denied(iot("alerts", "channels", "add", "steal", "--kind", "webhook", *args, key=a))
    denied(iot("alerts", "channels", "add", "steal", "--kind", "email", *smtp, "--secret", "smtp_pw", key=a))
    denied(iot("alerts", "channels", "add", "steal", "--kind", "email", *smtp, "--secret", "A/pw",
               "--smtp-ca-file", "/etc/shadow", key=a))  # fmt: skip
    assert "steal" not in _channels(registry_url)
    ok = iot("alerts", "channels", "add", "own", "--kind", "email", *smtp, "--secret", "A/pw", key=a)
    assert ok.code == 0, ok.err
    assert _hook(iot, a, "own-hook", "--url", "secret:A/slack", *at_a)[0] == 0
    assert _hook(iot, keys["root"], "global-ok", "--url", "https://e.example/h", "--secret", "smtp_pw")[0] == 0


# -- where notifications may connect -------------------------------------------------------------


def _delivery(options: dict[str, object] | None = None) -> Delivery:
    alert = {"id": 1, "status": "open", "severity": "major", "message": "hot", "count": 1, "last_value": 91.0,
             "opened_at": None}  # fmt: skip
    body = payload(transition="opened", delivery="1:1:opened", alert=alert, rule={"id": 1, "name": "r", "kind": "t"},
                   device={"id": "d", "type": None, "site": "A"}, actor=None)  # fmt: skip
    return Delivery(1, "1:1:opened", "opened", "webhook", "", dict(options or {}), None, body, 0)


def _post(url: str, guard: NetGuard = NetGuard(), timeout: float = 5) -> AttemptResult:
    return WebhookSender(timeout=timeout, guard=guard).send(_delivery(), url, "k")


SSRF_HOSTS = ["127.0.0.1", "0x7f000001", "2130706433", "127.1", "0177.0.0.1", "localhost", "[::ffff:127.0.0.1]"]


@pytest.mark.parametrize("host", SSRF_HOSTS)
def test_loopback_in_any_spelling_is_refused(receiver: HttpReceiver, host: str) -> None:
    out = _post(f"http://{host}:{receiver.port}/hook")
    assert (out.ok, out.status_code, out.error) == (False, None, NOT_ALLOWED)
    assert receiver.received == []
    allowed = _post(f"http://{host}:{receiver.port}/hook", LOOPBACK)  # the operator's explicit choice
    assert allowed.ok and len(receiver.received) == 1


@pytest.mark.parametrize(
    "host",
    ["[::1]", "169.254.169.254", "10.0.0.1", "172.16.5.4", "192.168.1.1", "100.64.0.1", "0.0.0.0", "224.0.0.1",
     "240.0.0.1", "[fc00::1]", "[fe80::1]", "[fec0::1]", "[ff02::1]", "[2002:7f00:1::]", "[64:ff9b::a00:1]"],
)  # fmt: skip
def test_internal_addresses_are_refused_before_connecting(host: str) -> None:
    out = _post(f"http://{host}:80/latest/meta-data/")
    assert (out.ok, out.error) == (False, NOT_ALLOWED)


def test_public_and_private_addresses_told_apart() -> None:
    public = ["8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
    assert all(is_public(ipaddress.ip_address(a)) for a in public)
    assert not any(is_public(ipaddress.ip_address(a)) for a in ["::1", "::ffff:10.0.0.1", "2001:db8::1", "::"])
    wide = NetGuard([ipaddress.ip_network("10.0.0.0/8")])
    assert wide.permitted(ipaddress.ip_address("::ffff:10.1.2.3")) and not wide.permitted(ipaddress.ip_address("::1"))


def test_an_smtp_host_on_loopback_gets_no_password(smtp: SmtpServer) -> None:
    """The review's attack: an e-mail channel at an SMTP host of the attacker's choosing. Here the
    guard refuses the loopback relay, so the notifier never connects, let alone authenticates."""
    opts = {"host": "127.0.0.1", "port": smtp.port, "user": smtp.user, "ca_file": str(smtp.cert)}
    out = EmailSender(timeout=5).send(_delivery(opts), "oncall@example.org", smtp.password)
    assert (out.ok, out.error) == (False, NOT_ALLOWED)
    assert smtp.auth_ok == [] and smtp.messages == []
    allowed = EmailSender(timeout=5, guard=LOOPBACK).send(_delivery(opts), "oncall@example.org", smtp.password)
    assert allowed.ok, allowed.error  # STARTTLS still verifies the certificate for the named host
    assert smtp.auth_ok and len(smtp.messages) == 1


@pytest.mark.parametrize("status", [302, 307])
def test_redirects_are_not_followed(receiver: HttpReceiver, status: int) -> None:
    inner = HttpReceiver().start()
    try:
        receiver.status, receiver.location = status, inner.url("/internal")
        out = _post(receiver.url(), LOOPBACK)
        assert (out.ok, out.status_code) == (False, status) and "not followed" in (out.error or "")
        assert inner.received == []
    finally:
        inner.stop()


def test_open_and_closed_ports_fail_alike() -> None:
    closed = free_port()
    with BannerServer() as banner:
        http = {p: _post(f"http://127.0.0.1:{p}/x", LOOPBACK) for p in (closed, banner.port)}
        mail = {
            p: EmailSender(timeout=5, guard=LOOPBACK).send(_delivery({"host": "127.0.0.1", "port": p}), "a@b.c", None)
            for p in (closed, banner.port)
        }
    for outcomes in (http, mail):
        assert [(o.ok, o.status_code, o.error) for o in outcomes.values()] == [(False, None, DELIVERY_FAILED)] * 2


def test_channels_test_uses_the_allowed_networks_setting(
    iot: Iot, keys: dict[str, str], receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = keys["root"]
    assert _hook(iot, root, "local", "--url", receiver.url("/tok"))[0] == 0
    refused = iot("alerts", "channels", "test", "local", key=root)
    assert (refused.code, refused.err) == (1, f"error: not sent: {NOT_ALLOWED}\n") and receiver.received == []
    monkeypatch.setenv("IOT_NOTIFY_ALLOWED_NETWORKS", "10.0.0.0/8, 127.0.0.0/8")
    sent = iot("alerts", "channels", "test", "local", key=root)
    assert sent.code == 0 and len(receiver.received) == 1, sent.err
    monkeypatch.setenv("IOT_NOTIFY_ALLOWED_NETWORKS", "127.0.0.1/8")
    bad = iot("alerts", "channels", "test", "local", key=root)
    assert bad.code == 2 and bad.err.startswith("error: invalid setting IOT_NOTIFY_ALLOWED_NETWORKS")


def test_a_secret_set_nowhere_is_refused_by_name(
    iot: Iot, keys: dict[str, str], registry_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not accepted for the notifier to fail each attempt: one line naming it, nothing added; the
    escape for a notifier with other settings warns. A key that may not name it learns nothing more."""
    monkeypatch.setenv("IOT_NOTIFY_SECRETS", json.dumps({"hook": "k"}))
    root = keys["root"]
    for args, name in (
        (("--url", "https://e.example/h", "--secret", "hmac"), "'hmac'"),
        (("--url", "secret:slackurl", "--secret", "hook"), "'slackurl'"),
    ):
        r = iot("alerts", "channels", "add", "x", "--kind", "webhook", *args, key=root)
        assert r.code == 2 and r.err.startswith(f"error: secret {name} is not set in IOT_NOTIFY_SECRETS"), r.err
        assert "--allow-missing-secret" in r.err and len(r.err.strip().splitlines()) == 1
    assert "x" not in _channels(registry_url)
    r = iot("alerts", "channels", "add", "x", "--kind", "webhook", "--url", "https://e.example/h",
            "--secret", "hmac", "--allow-missing-secret", key=root)  # fmt: skip
    assert r.code == 0 and "warning: secret 'hmac' is not set here" in r.err
    assert "x" in _channels(registry_url)
    assert _hook(iot, root, "set", "--url", "https://e.example/h", "--secret", "hook") == (0, "")
    denied(iot("alerts", "channels", "add", "y", "--kind", "webhook", "--url", "secret:B/unset", "--site", "A",
               key=keys["adminA"]))  # fmt: skip
