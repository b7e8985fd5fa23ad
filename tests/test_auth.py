"""Operator API keys, role checks, the audit trail, and device credential hashing."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry import credentials
from registry.auth import (
    BOOTSTRAP_ACTOR,
    Actor,
    FirstKeyNotAdmin,
    PermissionDenied,
    authenticate,
    create_key,
    disable_key,
    record_audit,
    require,
)
from registry.db import make_engine, migrate
from registry.models import ApiKey, AuditEntry
from tests.servers import find_binary


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'r.sqlite3'}")
    migrate(engine)
    with Session(engine) as s:
        yield s
    engine.dispose()


def test_role_order_and_clear_messages() -> None:
    viewer, operator = Actor("v", "viewer", None), Actor("o", "operator", None)
    require(viewer, "viewer", "list devices")
    require(operator, "viewer", "list devices")
    require(operator, "operator", "acknowledge alerts")
    with pytest.raises(PermissionDenied) as e:
        require(viewer, "operator", "acknowledge alerts")
    assert str(e.value) == "role viewer may not acknowledge alerts (needs operator)"
    with pytest.raises(PermissionDenied, match=r"^role operator may not add devices \(needs admin\)$"):
        require(operator, "admin", "add devices")


def test_site_limited_actor() -> None:
    actor = Actor("north-ops", "operator", ("north",))
    assert actor.can_see_site("north")
    assert not actor.can_see_site("south")
    assert not actor.can_see_site(None)
    assert BOOTSTRAP_ACTOR.can_see_site(None)
    require(actor, "operator", "acknowledge alerts", "north")
    with pytest.raises(PermissionDenied, match="limited to sites north: may not acknowledge"):
        require(actor, "operator", "acknowledge alerts", "south")


def test_bootstrap_then_keys_are_required(session: Session) -> None:
    assert authenticate(session, None) == BOOTSTRAP_ACTOR
    for role, sites in (("operator", ["north"]), ("viewer", []), ("admin", ["north"])):  # would lock admins out
        with pytest.raises(FirstKeyNotAdmin, match=f"refusing to create {role} key 'alice' as the first API key"):
            create_key(session, BOOTSTRAP_ACTOR, "alice", role, sites)
    admin_key = create_key(session, BOOTSTRAP_ACTOR, "root", "admin")
    session.commit()
    key = create_key(session, BOOTSTRAP_ACTOR, "alice", "operator", ["north", "east"])
    session.commit()
    row = session.scalars(select(ApiKey).where(ApiKey.name == "alice")).one()
    assert key not in row.key_hash and row.key_hash != key
    assert row.key_prefix == key[: len(row.key_prefix)]

    assert authenticate(session, key) == Actor("alice", "operator", ("north", "east"))
    with pytest.raises(PermissionDenied, match="IOT_API_KEY"):
        authenticate(session, None)
    with pytest.raises(PermissionDenied, match="unknown API key"):
        authenticate(session, key[:-1] + ("A" if key[-1] != "A" else "B"))

    admin = authenticate(session, admin_key)
    with pytest.raises(PermissionDenied, match="needs admin"):
        create_key(session, authenticate(session, key), "mallory", "admin")
    disable_key(session, admin, "alice")
    session.commit()
    with pytest.raises(PermissionDenied, match="'alice' is disabled"):
        authenticate(session, key)
    with pytest.raises(ValueError, match="already exists"):
        create_key(session, admin, "alice", "viewer")

    actions = [(e.actor, e.action, e.target) for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert actions == [
        ("local-admin", "key.add", "key:root"),
        ("local-admin", "key.add", "key:alice"),
        ("root", "key.disable", "key:alice"),
    ]


def test_record_audit_keeps_detail(session: Session) -> None:
    record_audit(session, Actor("bob", "admin", None), "device.add", "device:d1", site="x", n=2)
    session.commit()
    entry = session.scalars(select(AuditEntry)).one()
    assert (entry.actor, entry.action, entry.target, entry.detail) == (
        "bob",
        "device.add",
        "device:d1",
        {"site": "x", "n": 2},
    )
    assert entry.at is not None


def test_mosquitto_hash_format_and_verify() -> None:
    secret = credentials.issue_secret()
    hashed = credentials.hash_mosquitto(secret)
    empty, alg, iterations, salt, digest = hashed.split("$")
    assert (empty, alg, int(iterations)) == ("", "7", credentials.ITERATIONS)
    assert len(salt) == 16 and len(digest) == 88  # 12-byte salt, 64-byte digest, base64
    assert credentials.verify(secret, hashed)
    assert not credentials.verify(secret + "x", hashed)
    assert not credentials.verify(secret, "$6$nope")
    assert hashed != credentials.hash_mosquitto(secret)  # fresh salt every time


@pytest.mark.mosquitto
def test_verify_accepts_what_mosquitto_passwd_writes(tmp_path: Path) -> None:
    tool = find_binary("mosquitto_passwd")
    if tool is None:
        pytest.skip("mosquitto_passwd not found: apt-get install mosquitto")
    pwfile = tmp_path / "pw"
    pwfile.touch()
    subprocess.run([tool, "-b", str(pwfile), "dev1", "s3cret-value"], check=True)
    user, hashed = pwfile.read_text().strip().split(":", 1)
    assert user == "dev1"
    assert credentials.verify("s3cret-value", hashed)
    assert not credentials.verify("s3cret-valuE", hashed)


def test_password_and_acl_files() -> None:
    assert credentials.password_file({"a": "$7$1$x$y"}) == "a:$7$1$x$y\n"
    acl = credentials.acl_file(["d1", "d2"], "iot-ingest")
    assert "user iot-ingest\ntopic read devices/#\n" in acl
    assert "user d1\ntopic write devices/d1/#\n" in acl
    assert "user d2\ntopic write devices/d2/#\n" in acl
